package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clientGroupRecords is how many records each client-group test consumes.
const clientGroupRecords = 300

// produceSeq writes n records round robin over parts partitions of a new
// topic, each with value seqValue(partition, offset), and returns the end
// offsets.
func produceSeq(t *testing.T, b *Broker, topic string, parts int32, n int) map[int32]int64 {
	t.Helper()
	// Uncompressed: Debian's kafka-python has no snappy library.
	cl := newClient(t, b, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	defer cl.Close()
	end := make(map[int32]int64)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		p := int32(i) % parts
		recs = append(recs, &kgo.Record{Partition: p, Value: []byte(seqValue(p, end[p]))})
		end[p]++
	}
	ctx := testCtx(t, 30*time.Second)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", topic, err)
	}
	return end
}

// checkLiveGroup waits until DescribeGroups shows group Stable with exactly
// one member, from clientID, assigned every partition of topic.
func checkLiveGroup(t *testing.T, adm *kadm.Client, group, topic, clientID string, parts int32) kadm.DescribedGroup {
	t.Helper()
	var d kadm.DescribedGroup
	waitFor(t, 20*time.Second, "group "+group+" described as Stable with the client", func() error {
		d = describeGroup(t, adm, group)
		if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || len(d.Members) != 1 {
			return fmt.Errorf("state %q type %q, %d members, err %v", d.State, d.ProtocolType, len(d.Members), d.Err)
		}
		m := d.Members[0]
		if m.ClientID != clientID {
			return fmt.Errorf("member client ID %q, want %q", m.ClientID, clientID)
		}
		if m.ClientHost == "" {
			return fmt.Errorf("member %s has no client host", m.MemberID)
		}
		c, ok := m.Assigned.AsConsumer()
		if !ok || len(c.Topics) != 1 || c.Topics[0].Topic != topic || len(c.Topics[0].Partitions) != int(parts) {
			return fmt.Errorf("member assignment %+v, want all %d partitions of %s", c, parts, topic)
		}
		if j, ok := m.Join.AsConsumer(); !ok || len(j.Topics) != 1 || j.Topics[0] != topic {
			return fmt.Errorf("member subscription %+v, want [%s]", j, topic)
		}
		return nil
	})
	return d
}

// checkCommittedGroup asserts, after the client left, that the group is
// Empty and its committed offsets are the end offsets (lag 0).
func checkCommittedGroup(t *testing.T, adm *kadm.Client, group, topic string, end map[int32]int64) {
	t.Helper()
	waitFor(t, 20*time.Second, "group "+group+" empty after the client left", func() error {
		d := describeGroup(t, adm, group)
		if d.Err != nil || d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q, %d members, err %v", d.State, len(d.Members), d.Err)
		}
		return nil
	})
	if got := fetchCommitted(t, adm, group, topic, int32(len(end))); !mapsEqual(got, end) {
		t.Fatalf("committed offsets %v, want what the client consumed up to: %v", got, end)
	}
	checkLag(t, adm, group, topic, end, end)
}

// saramaGroupHandler feeds a Sarama consumer-group session into a tracker
// and marks every message for (auto-)commit.
type saramaGroupHandler struct{ tr *tracker }

func (saramaGroupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaGroupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.tr.record("sarama", msg.Partition, msg.Offset, string(msg.Value))
		sess.MarkMessage(msg, "")
	}
	return nil
}

// TestGroupSarama runs Sarama's ConsumerGroup (round-robin assignor): it
// joins, consumes everything exactly once, commits; kadm shows the live
// member, then the committed offsets and zero lag.
func TestGroupSarama(t *testing.T) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group, parts = "sarama-group", "sarama-group", 3
	createTopic(t, adm, topic, parts, nil)
	end := produceSeq(t, b, topic, parts, clientGroupRecords)
	tr := newTracker(topic, parts)

	cfg := saramaConfig(sarama.CompressionNone)
	cfg.ClientID = "compat-sarama-group"
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	cg, err := sarama.NewConsumerGroup([]string{b.Addr()}, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, saramaGroupHandler{tr}); err != nil && ctx.Err() == nil {
				tr.problem("sarama Consume: %v", err)
				return
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			tr.problem("sarama group error: %v", err)
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := cg.Close(); err != nil {
			t.Errorf("close sarama consumer group: %v", err)
		}
	}
	t.Cleanup(stop)

	waitFor(t, 30*time.Second, "sarama consumed every record", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	d := checkLiveGroup(t, adm, group, topic, cfg.ClientID, parts)
	if d.Protocol != "roundrobin" {
		t.Errorf("group protocol %q, want Sarama's roundrobin", d.Protocol)
	}
	// Sarama commits marked offsets every 200ms.
	waitFor(t, 15*time.Second, "sarama's auto-commit reaches the end offsets", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := adm.FetchOffsetsForTopics(ctx, group, topic)
		if err != nil {
			return err
		}
		for p, e := range end {
			if o, ok := resp.Lookup(topic, p); !ok || o.Err != nil || o.At != e {
				return fmt.Errorf("partition %d committed %+v, want %d", p, o, e)
			}
		}
		return nil
	})
	stop()
	tr.check(t)
	tr.checkExactlyOnce(t, end, nil)
	checkCommittedGroup(t, adm, group, topic, end)
}

// TestGroupKcat runs librdkafka's balanced consumer (`kcat -G`): it joins,
// prints every record once, and commits on shutdown (SIGTERM, as an
// operator stops it).
func TestGroupKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group, parts = "kcat-group", "kcat-group", 3
	createTopic(t, adm, topic, parts, nil)
	end := produceSeq(t, b, topic, parts, clientGroupRecords)
	tr := newTracker(topic, parts)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-X", "broker.address.family=v4",
		"-X", "client.id=compat-kcat", "-X", "auto.offset.reset=earliest",
		"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=200",
		"-u", "-o", "beginning", "-G", group, "-f", `%p|%o|%s\n`, topic)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kcat -G: %v", err)
	}
	exited := make(chan error, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		readKcatLines(out, tr)
	}()
	go func() {
		<-read
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("kcat stderr:\n%s", stderr.String())
		}
	})

	waitFor(t, 60*time.Second, "kcat -G consumed every record", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	checkLiveGroup(t, adm, group, topic, "compat-kcat", parts)
	// kcat stops cleanly on SIGTERM: it closes the consumer, which commits
	// the stored offsets and leaves the group.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("kcat -G after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("kcat -G still running 30s after SIGTERM\nstderr:\n%s", stderr.String())
	}
	tr.check(t)
	tr.checkExactlyOnce(t, end, nil)
	checkCommittedGroup(t, adm, group, topic, end)
}

// readKcatLines parses kcat's `%p|%o|%s` lines into the tracker.
func readKcatLines(r io.Reader, tr *tracker) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "|", 3)
		if len(f) != 3 {
			tr.problem("kcat printed %q", sc.Text())
			continue
		}
		p, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			tr.problem("kcat printed %q", sc.Text())
			continue
		}
		tr.record("kcat", int32(p), o, f[2])
	}
}

// TestGroupKafkaPython runs kafka-python's KafkaConsumer with a group_id
// (python/group_consume.py): it joins, consumes, commits synchronously and
// reads its commits back; kadm sees the live member and the same offsets.
func TestGroupKafkaPython(t *testing.T) {
	py := requireTool(t, "/usr/bin/python3", "Debian's python3 with python3-kafka")
	if err := exec.Command(py, "-c", "import kafka").Run(); err != nil {
		missingTool(t, "/usr/bin/python3 cannot import kafka ("+err.Error()+"): install the Debian package python3-kafka")
	}
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group, parts = "python-group", "python-group", 3
	createTopic(t, adm, topic, parts, nil)
	end := produceSeq(t, b, topic, parts, clientGroupRecords)
	tr := newTracker(topic, parts)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "python/group_consume.py", b.Addr(), topic, group, strconv.Itoa(clientGroupRecords))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kafka-python: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("kafka-python stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		_ = cmd.Wait()
		t.Fatalf("kafka-python group consumer: %v\nstderr:\n%s", err, stderr.String())
	}
	var res struct {
		Consumed []struct {
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Value     string `json:"value"`
		} `json:"consumed"`
		Assignment []int32           `json:"assignment"`
		Committed  map[string]*int64 `json:"committed"`
	}
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("parse kafka-python output %q: %v", line, err)
	}
	for _, r := range res.Consumed {
		tr.record("kafka-python", r.Partition, r.Offset, r.Value)
	}
	tr.check(t)
	if err := tr.consumedThrough(end); err != nil {
		t.Fatalf("kafka-python: %v", err)
	}
	tr.checkExactlyOnce(t, end, nil)
	for p, e := range end {
		if c := res.Committed[strconv.Itoa(int(p))]; c == nil || *c != e {
			t.Errorf("kafka-python's committed() for partition %d: %v, want %d", p, c, e)
		}
	}
	checkLiveGroup(t, adm, group, topic, "compat-kafka-python-group", parts)
	if got := fetchCommitted(t, adm, group, topic, parts); !mapsEqual(got, end) {
		t.Errorf("kadm sees committed %v while kafka-python is live, want %v", got, end)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kafka-python exit: %v\nstderr:\n%s", err, stderr.String())
	}
	checkCommittedGroup(t, adm, group, topic, end)
}

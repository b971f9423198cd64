package compat

// Controller failover and a paused (SIGSTOPped) leader, against the
// multi-process cluster of cluster_harness_test.go.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceAndReadBack writes n acks=all records to every partition of topic
// and reads them back from the current leaders.
func produceAndReadBack(t *testing.T, c *Cluster, topic string, parts int32, tag string, n int) {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	prod := c.Client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	starts := endOffsetsOf(t, c, topic)
	var recs []*kgo.Record
	for p := int32(0); p < parts; p++ {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d-%d", tag, p, i)})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("%s: acks=all produce: %v", tag, err)
	}
	offsets := make(map[int32]kgo.Offset)
	for p := int32(0); p < parts; p++ {
		offsets[p] = kgo.NewOffset().At(starts[p])
	}
	cons := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	got := make(map[int32]int)
	for total := 0; total < len(recs); {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read %d of %d records back: %v", tag, total, len(recs), got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			want := fmt.Sprintf("%s-%d-%d", tag, r.Partition, got[r.Partition])
			if string(r.Value) != want {
				t.Fatalf("%s: partition %d offset %d: read %q, want %q", tag, r.Partition, r.Offset, r.Value, want)
			}
			got[r.Partition]++
			total++
		})
	}
}

// TestClusterControllerFailover: a killed controller is replaced and leader
// elections keep working under the new one; a controller paused past its
// session is replaced too, and when it wakes the cluster stays consistent —
// one controller, one leader per partition that every broker agrees on, and
// produce/consume working.
func TestClusterControllerFailover(t *testing.T) {
	const topic, parts = "ctl", int32(3)
	c := StartCluster(t, 3, clusterOverrides...)
	c.CreateTopic(topic, parts, nil)
	anyID := func(int32) error { return nil }

	first := c.WaitController(10*time.Second, "a controller", anyID)
	t.Logf("SIGKILL the controller, node %d", first)
	c.Node(first).Kill()
	second := c.WaitController(20*time.Second, "a new controller after the kill", func(id int32) error {
		if id == first {
			return fmt.Errorf("controller still %d", id)
		}
		return nil
	})
	t.Logf("node %d took over as controller", second)
	c.Node(first).Restart()
	md := c.WaitFullISR(topic, 30*time.Second)

	// The new controller elects leaders: kill a leader that is not it.
	victim, part := int32(-1), int32(-1)
	for p := int32(0); p < parts; p++ {
		if l := md[p].Leader; l != second {
			victim, part = l, p
			break
		}
	}
	if victim < 0 {
		t.Fatalf("every partition is led by the controller %d: %v", second, md)
	}
	t.Logf("SIGKILL node %d, leader of %s-%d", victim, topic, part)
	c.Node(victim).Kill()
	c.WaitNewLeader(topic, part, victim, 20*time.Second)
	produceAndReadBack(t, c, topic, parts, "after-kill", 50)
	c.Node(victim).Restart()
	c.WaitFullISR(topic, 30*time.Second)

	// A controller that stops running (SIGSTOP) past its session.
	paused := c.WaitController(10*time.Second, "a controller", anyID)
	t.Logf("SIGSTOP the controller, node %d", paused)
	c.Node(paused).Pause()
	third := c.WaitController(20*time.Second, "a new controller while the old one is paused", func(id int32) error {
		if id == paused {
			return fmt.Errorf("controller still %d", id)
		}
		return nil
	})
	c.WaitMetadata(topic, 20*time.Second, "no partition led by the paused node", func(md map[int32]PartState) error {
		for p, st := range md {
			if st.Leader == paused {
				return fmt.Errorf("partition %d still led by %d", p, paused)
			}
		}
		return nil
	})
	produceAndReadBack(t, c, topic, parts, "while-paused", 50)
	c.Node(paused).Resume()
	t.Logf("node %d resumed; node %d is controller", paused, third)
	// The deposed controller notices it lost its session and stops its
	// loop rather than acting on its stale view.
	waitFor(t, 10*time.Second, "the resumed old controller steps down", func() error {
		log := c.Node(paused).Stderr()
		if after, ok := strings.CutPrefix(log[strings.LastIndex(log, "paused with SIGSTOP"):], "paused with SIGSTOP"); ok &&
			strings.Contains(after, `msg="controller loop stopped"`) {
			return nil
		}
		return fmt.Errorf("node %d logged no controller loop stop since its pause", paused)
	})

	// Every node, the resumed one included, must agree on one controller
	// and on each partition's leader and epoch.
	c.WaitController(20*time.Second, "every node agrees on the controller after the resume", anyID)
	c.WaitFullISR(topic, 30*time.Second)
	produceAndReadBack(t, c, topic, parts, "after-resume", 50)
	if now := c.WaitController(5*time.Second, "a controller", anyID); now == paused {
		t.Logf("note: the resumed node %d is controller again", paused)
	}
}

// TestClusterPausedLeader: the leader of a partition is SIGSTOPped past its
// session while an acks=all Produce for it sits unread in its socket. A new
// leader is elected and acknowledges acks=all writes; when the old leader
// resumes it must not acknowledge the stale write, and after it rejoins the
// ISR every replica holds the same log.
func TestClusterPausedLeader(t *testing.T) {
	const topic = "pz"
	c := StartCluster(t, 3, clusterOverrides...)
	c.CreateTopic(topic, 1, nil)
	produceAndReadBack(t, c, topic, 1, "before", 100)

	st := c.WaitFullISR(topic, 10*time.Second)[0]
	old := c.Node(st.Leader)
	_, topicID, err := c.MetadataSeenBy(old, topic)
	if err != nil {
		t.Fatal(err)
	}
	oldCl := c.NodeClient(old, kgo.RequestTimeoutOverhead(60*time.Second))
	conn := oldCl.SeedBrokers()[0]
	ctx := testCtx(t, 90*time.Second)
	// Opens the produce connection, so the next request is written to the
	// paused process's socket rather than stuck dialing.
	warm, err := conn.Request(ctx, rawProduceRequest(topic, topicID, "warm"))
	if err != nil {
		t.Fatalf("produce to the leader %d: %v", old.ID, err)
	}
	if code := produceCode(warm); code != 0 {
		t.Fatalf("produce to the leader %d: %s", old.ID, errCode(code))
	}

	old.Pause()
	type outcome struct {
		resp kmsg.Response
		err  error
	}
	stale := make(chan outcome, 1)
	go func() {
		resp, err := conn.Request(ctx, rawProduceRequest(topic, topicID, "stale"))
		stale <- outcome{resp, err}
	}()
	now := c.WaitNewLeader(topic, 0, old.ID, 20*time.Second)
	t.Logf("node %d paused; node %d leads %s-0 at epoch %d", old.ID, now.Leader, topic, now.Epoch)
	produceAndReadBack(t, c, topic, 1, "new-leader", 100)
	old.Resume()

	select {
	case o := <-stale:
		if o.err != nil {
			t.Logf("stale produce to the deposed leader: %v", o.err)
		} else if code := produceCode(o.resp); code == 0 {
			t.Errorf("node %d acknowledged an acks=all write sent while it was paused, after node %d became leader: %+v", old.ID, now.Leader, o.resp)
		} else {
			t.Logf("stale produce to the deposed leader: %s", errCode(code))
		}
	case <-ctx.Done():
		t.Fatal("no answer to the stale produce")
	}

	c.WaitFullISR(topic, 30*time.Second)
	produceAndReadBack(t, c, topic, 1, "after-resume", 50)
	// Every replica converges on one log: the old leader's divergent tail,
	// if it appended the stale batch, is truncated.
	waitFor(t, 20*time.Second, "every replica holds the same log", func() error {
		return sameReplicaLogs(c, topic+"-0")
	})
	cons := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsetsAtStart(1)}))
	end := endOffsetsOf(t, c, topic)[0]
	for read := int64(0); read < end; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", read, end)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			if bytes.HasPrefix(r.Value, []byte("stale")) {
				t.Errorf("the write sent to the paused leader is in the log at offset %d", r.Offset)
			}
		})
	}
}

// rawProduceRequest is an acks=all Produce of one record to partition 0.
func rawProduceRequest(topic string, id [16]byte, value string) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = 0
	rp.Records = buildBatch(time.Now().UnixMilli(), []rawRecord{{value: []byte(value)}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceCode(resp kmsg.Response) int16 {
	pr := resp.(*kmsg.ProduceResponse)
	for _, rt := range pr.Topics {
		for _, rp := range rt.Partitions {
			return rp.ErrorCode
		}
	}
	return kerr.UnknownServerError.Code
}

// sameReplicaLogs compares the segment files of one partition directory
// across every node's log dir: replicas copy the leader's batches byte for
// byte, so converged replicas have identical logs.
func sameReplicaLogs(c *Cluster, dir string) error {
	var first []byte
	var firstID int32
	for _, nd := range c.Nodes {
		names, err := filepath.Glob(filepath.Join(nd.LogDir, dir, "*.log"))
		if err != nil {
			return err
		}
		slices.Sort(names) // 20-digit base offsets sort numerically
		var all []byte
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return err
			}
			all = append(all, b...)
		}
		if len(names) == 0 {
			return fmt.Errorf("node %d has no segments in %s", nd.ID, dir)
		}
		if first == nil {
			first, firstID = all, nd.ID
			continue
		}
		if !bytes.Equal(first, all) {
			return fmt.Errorf("node %d's log (%s) differs from node %d's (%s)", nd.ID, describeBatches(all), firstID, describeBatches(first))
		}
	}
	return nil
}

// describeBatches lists base offset, leader epoch and record count of each
// batch in raw segment bytes.
func describeBatches(raw []byte) string {
	var out []string
	for len(raw) >= 61 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			out = append(out, "unparsable: "+err.Error())
			break
		}
		out = append(out, fmt.Sprintf("%d+%d@e%d", b.FirstOffset, b.NumRecords, b.PartitionLeaderEpoch))
		raw = raw[12+int(b.Length):]
	}
	if len(raw) > 0 && len(raw) < 61 {
		out = append(out, fmt.Sprintf("%d trailing bytes", len(raw)))
	}
	return strings.Join(out, " ")
}

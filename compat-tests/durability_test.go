package compat

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRestartAfterSIGTERM: a clean stop and start on the same log dir keeps
// topics (with their IDs), records and offsets, and appends continue after
// the old end.
func TestRestartAfterSIGTERM(t *testing.T) {
	b := StartBroker(t)
	adm := newAdmin(t, b)
	ids := map[string]kadm.TopicID{}
	for _, topic := range []string{"keep-a", "keep-b"} {
		ids[topic] = createTopic(t, adm, topic, 3, map[string]*string{"retention.ms": str("86400000")}).ID
	}
	produced := map[string][][]string{}
	p := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testCtx(t, 60*time.Second)
	for _, topic := range []string{"keep-a", "keep-b"} {
		produced[topic] = make([][]string, 3)
		var recs []*kgo.Record
		for i := 0; i < 900; i++ {
			v := fmt.Sprintf("%s-%d", topic, i)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)})
			produced[topic][i%3] = append(produced[topic][i%3], v)
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", topic, err)
		}
	}
	p.Close()

	b.Restart()

	adm = newAdmin(t, b)
	lt, err := adm.ListTopics(testCtx(t, 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for topic, id := range ids {
		td, ok := lt[topic]
		if !ok {
			t.Fatalf("topic %s lost across restart", topic)
		}
		if td.ID != id || len(td.Partitions) != 3 {
			t.Errorf("%s after restart: id %v (was %v), %d partitions", topic, td.ID, id, len(td.Partitions))
		}
		checkConfigs(t, adm, topic, map[string]string{"retention.ms": "86400000"})
		recs := consumeRange(t, b, topic, map[int32]int64{0: 300, 1: 300, 2: 300})
		for part, rs := range recs {
			for i, r := range rs {
				if string(r.Value) != produced[topic][part][i] || r.Offset != int64(i) {
					t.Fatalf("%s/%d@%d = %q after restart, want %q at %d", topic, part, r.Offset, r.Value, produced[topic][part][i], i)
				}
			}
		}
	}
	p = newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: "keep-a", Partition: 1, Value: []byte("after restart")}
	if err := p.ProduceSync(testCtx(t, 15*time.Second), r).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	if r.Offset != 300 {
		t.Fatalf("first offset after restart %d, want 300", r.Offset)
	}
}

type ackedRecord struct {
	partition int32
	offset    int64
}

// TestKillDuringProduce: SIGKILL the broker in the middle of a steady
// acks=all idempotent produce, restart on the same log dir, and require every
// acknowledged record at its acknowledged offset, with no record twice.
func TestKillDuringProduce(t *testing.T) {
	const partitions = 4
	b := StartBroker(t)
	createTopic(t, newAdmin(t, b), "crash", partitions, nil)

	cl := newClient(t, b,
		kgo.DefaultProduceTopic("crash"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordDeliveryTimeout(5*time.Second),
	)
	var (
		mu    sync.Mutex
		acked = map[string]ackedRecord{}
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for n := 0; n < 2_000_000 && ctx.Err() == nil; n++ {
			v := fmt.Sprintf("crash-%08d", n)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Partition: int32(n % partitions), Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err == nil {
					mu.Lock()
					acked[v] = ackedRecord{r.Partition, r.Offset}
					mu.Unlock()
				}
			})
		}
	}()
	waitFor(t, 60*time.Second, "20 000 acknowledged records before the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 20_000 {
			return fmt.Errorf("%d acked", len(acked))
		}
		return nil
	})
	b.Kill()
	cancel()
	<-stopped
	// Close fails whatever is still buffered or being retried, so every
	// promise has run once it returns.
	cl.Close()
	waitCh := make(chan struct{})
	go func() { wg.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("produce promises did not finish within 30s of the kill")
	}
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	t.Logf("%d records acknowledged before SIGKILL", nAcked)

	b.Restart()
	ends := endOffsets(t, newAdmin(t, b), "crash")
	recs := consumeRange(t, b, "crash", ends)
	seen := map[string]ackedRecord{}
	for p, rs := range recs {
		for i, r := range rs {
			if r.Offset != int64(i) {
				t.Fatalf("crash/%d: record #%d at offset %d (gap or duplicate offset)", p, i, r.Offset)
			}
			v := string(r.Value)
			if string(r.Key) != v {
				t.Fatalf("crash/%d@%d: key %q value %q", p, r.Offset, r.Key, v)
			}
			if prev, dup := seen[v]; dup {
				t.Fatalf("record %s stored twice: %v and %d/%d", v, prev, p, r.Offset)
			}
			seen[v] = ackedRecord{p, r.Offset}
		}
	}
	lost := 0
	for v, a := range acked {
		if got, ok := seen[v]; !ok || got != a {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s at %d/%d; after restart: %v (present %v)", v, a.partition, a.offset, got, ok)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records missing or moved after kill -9", lost, nAcked)
	}
}

// TestSIGTERMWhileStarting: a broker still waiting at start-up — here for
// the other members of its embedded etcd cluster, which never come, as in a
// docker-compose stack stopped before all brokers were up — stops cleanly
// on SIGTERM (exit status 0, one log line) instead of dying to the signal.
func TestSIGTERMWhileStarting(t *testing.T) {
	ports, err := freePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	peer := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i]) }
	cmd := exec.Command(brokerBin(t),
		"--override", "node.id=1",
		"--override", "listeners=PLAINTEXT://127.0.0.1:0",
		"--override", "log.dirs="+t.TempDir(),
		"--override", "etcd.embed.client.url="+peer(3),
		"--override", "etcd.embed.peer.url="+peer(0),
		"--override", fmt.Sprintf("etcd.embed.initial.cluster=1=%s,2=%s,3=%s", peer(0), peer(1), peer(2)))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 20*time.Second, "the broker logs that it waits for the etcd quorum", func() error {
		if !strings.Contains(stderr.String(), "waiting for a quorum") {
			return errors.New("not yet")
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM during start-up: %v, want status 0\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("broker did not stop within 15s of SIGTERM during start-up\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped by signal during start-up") {
		t.Errorf("no log line saying why it stopped:\n%s", stderr.String())
	}
}

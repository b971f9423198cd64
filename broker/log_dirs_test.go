package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips the test
// saying why (mounting needs root).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a small tmpfs to fill up (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// lockedBuffer collects a broker's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// startLoggedBroker is startBroker with the broker's log kept in logs.
func startLoggedBroker(t *testing.T, logs *lockedBuffer, dirs []string, mutate ...func(*config.Config)) *testBroker {
	t.Helper()
	cfg := config.NewConfig()
	cfg.NodeID = 1
	cfg.Listeners = []config.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 0}}
	cfg.LogDirs = dirs
	cfg.EtcdEmbedClientURL = "http://127.0.0.1:0"
	cfg.EtcdEmbedPeerURL = "http://127.0.0.1:0"
	for _, m := range mutate {
		m(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	tb := &testBroker{Broker: b, addr: b.listeners[0].Addr().String(), cfg: cfg}
	t.Cleanup(func() { tb.stop(t) })
	waitUntil(t, 10*time.Second, "the broker is controller", func() bool { return b.controller.Load() != nil })
	return tb
}

// TestFullLogDirGoesOffline (KIP-112): one of two log dirs fills up. Its
// partition answers KAFKA_STORAGE_ERROR, the dir goes offline as a unit
// (one error line, in the registration, in the metric), the partition on
// the other dir keeps taking writes, a new partition is placed on the
// healthy dir, and the shutdown leaves the failed dir to be recovered. Once
// space is freed a restart brings the dir back with every acknowledged
// record.
func TestFullLogDirGoesOffline(t *testing.T) {
	full := smallDisk(t, 3<<20)
	healthy := t.TempDir()
	logs := &lockedBuffer{}
	smallIndexes := func(c *config.Config) { c.LogIndexSizeMaxBytes = 64 << 10 }
	tb := startLoggedBroker(t, logs, []string{healthy, full}, smallIndexes)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "disk", 2, nil)
	onFull, onHealthy := int32(-1), int32(-1)
	for p := int32(0); p < 2; p++ {
		part, err := tb.partitions.leaderFor("disk", p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(part.Dir) == filepath.Clean(full) {
			onFull = p
		} else {
			onHealthy = p
		}
	}
	if onFull < 0 || onHealthy < 0 {
		t.Fatalf("partitions were not spread over the two dirs (full: %d, healthy: %d)", onFull, onHealthy)
	}

	// Acknowledged writes, then fill the dir up.
	acked := 0
	for i := 0; i < 5; i++ {
		if r := produceRaw(t, cl, 11, "disk", onFull, makeBatch(-1, -1, -1, 10, time.Now().UnixMilli())); r.ErrorCode != 0 {
			t.Fatalf("produce before filling: %s", kerr.ErrorForCode(r.ErrorCode))
		}
		acked += 10
	}
	filler := filepath.Join(full, "filler")
	_ = os.WriteFile(filler, make([]byte, 3<<20), 0o644) // fills the disk; ENOSPC part way is the point
	big := makeBatch(-1, -1, -1, 200, time.Now().UnixMilli())
	code := int16(0)
	for i := 0; i < 50 && code == 0; i++ {
		code = produceRaw(t, cl, 11, "disk", onFull, big).ErrorCode
	}
	if code != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to the full dir: %s, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	waitUntil(t, 10*time.Second, "the dir is recorded offline", func() bool {
		bi := tb.view.Image().Brokers[tb.nodeID]
		return len(bi.OfflineDirs) == 1 && bi.ReplicaOffline("disk", onFull)
	})
	if r := produceRaw(t, cl, 11, "disk", onFull, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli())); r.ErrorCode != kerr.KafkaStorageError.Code {
		t.Errorf("produce after the dir went offline: %s, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := produceRaw(t, cl, 11, "disk", onHealthy, makeBatch(-1, -1, -1, 10, time.Now().UnixMilli())); r.ErrorCode != 0 {
		t.Errorf("produce to the partition on the healthy dir: %s", kerr.ErrorForCode(r.ErrorCode))
	}
	createTopic(t, cl, "after", 1, nil)
	if part, err := tb.partitions.leaderFor("after", 0); err != nil || filepath.Dir(part.Dir) != filepath.Clean(healthy) {
		t.Errorf("a partition created after the failure: %v in %v, want the healthy dir", err, part)
	}
	if n := logs.count("log dir failed"); n != 1 {
		t.Errorf("%d log lines for the failed dir, want 1", n)
	}
	select {
	case err := <-tb.Fatal():
		t.Fatalf("the broker gave up with a healthy dir left: %v", err)
	default:
	}

	tb.stop(t)
	if _, err := os.Stat(filepath.Join(full, ".kafka_cleanshutdown")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed dir was marked cleanly shut down (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(healthy, ".kafka_cleanshutdown")); err != nil {
		t.Errorf("the healthy dir was not marked cleanly shut down: %v", err)
	}

	// The operator frees the disk and restarts the broker.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	tb2 := startLoggedBroker(t, &lockedBuffer{}, []string{healthy, full}, smallIndexes)
	cl2 := newClient(t, tb2.addr)
	// With its only replica offline the partition had no leader; the
	// controller elects the returning replica again.
	waitUntil(t, 20*time.Second, "the partition in the repaired dir has a leader again", func() bool {
		return tb2.view.Image().Topics["disk"].Partitions[onFull].State.Leader == tb2.nodeID
	})
	if got := listLatest(t, cl2, "disk", onFull); got < int64(acked) {
		t.Fatalf("after the restart the log ends at %d, below the %d acknowledged records", got, acked)
	}
	if r := produceRaw(t, cl2, 11, "disk", onFull, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli())); r.ErrorCode != 0 {
		t.Errorf("produce to the repaired dir: %s", kerr.ErrorForCode(r.ErrorCode))
	}
	if bi := tb2.view.Image().Brokers[tb2.nodeID]; len(bi.OfflineDirs) != 0 {
		t.Errorf("after the restart the registration still lists offline dirs %v", bi.OfflineDirs)
	}
}

// TestEveryLogDirOffline: when the last log dir fails the broker says why
// and asks to be stopped (Fatal), as Kafka halts.
func TestEveryLogDirOffline(t *testing.T) {
	logs := &lockedBuffer{}
	tb := startLoggedBroker(t, logs, []string{t.TempDir()})
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "only", 1, nil)
	part, err := tb.partitions.leaderFor("only", 0)
	if err != nil {
		t.Fatal(err)
	}
	tb.partitions.failDir(filepath.Dir(part.Dir), errors.New("input/output error (injected)"))
	select {
	case err := <-tb.Fatal():
		if !strings.Contains(err.Error(), "every log dir is offline") {
			t.Errorf("fatal error %q does not say every log dir is offline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not give up with no log dir left")
	}
	if n := logs.count("the broker cannot go on"); n != 1 {
		t.Errorf("%d lines saying the broker stops, want 1", n)
	}
}

// TestLogDirFailureMovesLeadership (KIP-112): in a three-broker cluster,
// the second log dir of broker 1 (a small tmpfs) fills up. Its replicas
// there lose their leaderships to in-sync replicas on the other brokers and
// leave the ISRs, its other dir keeps its replicas in sync, acks=all writes
// to every partition go on, and every record acknowledged before and after
// is read back.
func TestLogDirFailureMovesLeadership(t *testing.T) {
	second := smallDisk(t, 3<<20)
	c := startCluster(t, 3, func(cfg *config.Config) {
		if cfg.NodeID == 1 {
			cfg.LogDirs = append(cfg.LogDirs, second)
		}
		cfg.MinInsyncReplicas = 2
		cfg.DefaultReplicationFactor = 3
		cfg.LogIndexSizeMaxBytes = 64 << 10
	})
	const parts = 12
	cl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("jbod"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "jbod", parts, 3
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(context.Background(), cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %v", err, resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produceAll := func(round int) {
		t.Helper()
		for p := int32(0); p < parts; p++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%d", round, p)}).FirstErr(); err != nil {
				t.Fatalf("round %d: produce to partition %d: %v", round, p, err)
			}
		}
	}
	produceAll(0)
	b1 := c.brokers[0]
	waitUntil(t, 20*time.Second, "broker 1 hosts every partition", func() bool { return len(b1.partitions.all()) >= parts })
	var inSecond []int32
	for _, p := range b1.partitions.all() {
		if p.Topic == "jbod" && filepath.Dir(p.Dir) == filepath.Clean(second) {
			inSecond = append(inSecond, p.Index)
		}
	}
	if len(inSecond) == 0 || len(inSecond) == parts {
		t.Fatalf("broker 1 placed %d of %d partitions in its second dir; want them spread", len(inSecond), parts)
	}

	// Fill the disk; the next writes of broker 1's replicas there (as
	// leader or follower) fail with ENOSPC.
	_ = os.WriteFile(filepath.Join(second, "filler"), make([]byte, 3<<20), 0o644)
	big := make([]byte, 64<<10)
	for i := 0; i < 10 && !b1.partitions.dirOffline(filepath.Clean(second)); i++ {
		for p := int32(0); p < parts; p++ {
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: big}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatalf("produce while the disk fills: %v", err)
		}
	}
	if !b1.partitions.dirOffline(filepath.Clean(second)) {
		t.Fatal("broker 1's full dir did not go offline")
	}
	waitUntil(t, 20*time.Second, "broker 1's replicas in the failed dir lead nowhere and are out of the ISRs", func() bool {
		top := c.brokers[1].view.Image().Topics["jbod"]
		for _, p := range inSecond {
			st := top.Partitions[p].State
			if st.Leader == 1 || st.Leader < 0 || slices.Contains(st.ISR, 1) {
				return false
			}
		}
		return true
	})
	for p := int32(0); p < parts; p++ {
		if slices.Contains(inSecond, p) {
			continue
		}
		if st := c.brokers[1].view.Image().Topics["jbod"].Partitions[p].State; !slices.Contains(st.ISR, 1) {
			t.Errorf("partition %d, on broker 1's healthy dir, lost broker 1 from its ISR %v", p, st.ISR)
		}
	}
	produceAll(1)

	cons := c.client(kgo.ConsumeTopics("jbod"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < 2*parts && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if len(r.Value) < 64 {
				seen[string(r.Value)] = true
			}
		})
	}
	if len(seen) != 2*parts {
		t.Fatalf("read back %d of the %d acknowledged records", len(seen), 2*parts)
	}
}

package compat

// Fault tests against a three-process cluster (cluster_harness_test.go):
// brokers are SIGKILLed, SIGTERMed, SIGSTOPped and restarted while franz-go
// clients produce and consume, and the tests check what Kafka promises with
// acks=all, min.insync.replicas=2 and unclean leader election off.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clusterOverrides are the settings every cluster test runs with: short
// sessions so failover happens within seconds, and Kafka's safe durability
// settings.
var clusterOverrides = []string{
	"broker.session.timeout.ms=3000",
	"replica.lag.time.max.ms=3000",
	"default.replication.factor=3",
	"min.insync.replicas=2",
	"offsets.topic.replication.factor=3",
	"offsets.topic.num.partitions=3",
	"transaction.state.log.replication.factor=3",
	"transaction.state.log.num.partitions=3",
	"transaction.state.log.min.isr=2",
	"unclean.leader.election.enable=false",
	"group.initial.rebalance.delay.ms=0",
}

// ackLog records what a producer had acknowledged, per partition in ack
// order, and every failure.
type ackLog struct {
	mu     sync.Mutex
	acked  map[int32][]ackedSeq
	failed []error
}

type ackedSeq struct {
	seq    int
	offset int64
}

func newAckLog() *ackLog { return &ackLog{acked: make(map[int32][]ackedSeq)} }

func (a *ackLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, rs := range a.acked {
		n += len(rs)
	}
	return n
}

// steadyProducer produces value "p-seq" records round-robin to partitions
// 0..parts-1 every interval until stop is closed, then flushes.
type steadyProducer struct {
	cl   *kgo.Client
	log  *ackLog
	stop chan struct{}
	done chan struct{}
}

func startSteadyProducer(t *testing.T, cl *kgo.Client, parts int32, interval time.Duration) *steadyProducer {
	t.Helper()
	sp := &steadyProducer{cl: cl, log: newAckLog(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		seqs := make([]int, parts)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-sp.stop:
				return
			case <-tick.C:
			}
			p := int32(i) % parts
			seq := seqs[p]
			seqs[p]++
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, seq)}
			cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				sp.log.mu.Lock()
				defer sp.log.mu.Unlock()
				if err != nil {
					sp.log.failed = append(sp.log.failed, fmt.Errorf("record %s: %w", r.Value, err))
					return
				}
				sp.log.acked[r.Partition] = append(sp.log.acked[r.Partition], ackedSeq{seq: seq, offset: r.Offset})
			})
		}
	}()
	return sp
}

// finish stops producing and waits until every record is acknowledged or
// failed.
func (sp *steadyProducer) finish(t *testing.T, d time.Duration) {
	t.Helper()
	close(sp.stop)
	<-sp.done
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := sp.cl.Flush(ctx); err != nil {
		t.Fatalf("flush the producer: %v", err)
	}
}

// waitProgress waits until the producer has n more acknowledgements than
// now: the cluster accepts acks=all writes again.
func (sp *steadyProducer) waitProgress(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	base := sp.log.count()
	waitFor(t, d, what, func() error {
		if got := sp.log.count() - base; got < n {
			return fmt.Errorf("%d new acknowledgements, want %d", got, n)
		}
		return nil
	})
}

// verifyExactlyOnce reads every partition from the start and checks that
// each acknowledged record is there exactly once, at the offset it was
// acknowledged with, in production order, and that nothing else is.
func verifyExactlyOnce(t *testing.T, c *Cluster, topic string, parts int32, log *ackLog) {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, err := range log.failed {
		t.Errorf("a produce failed (an idempotent producer with retries should not): %v", err)
	}
	want := make(map[int32]int64)
	for p := int32(0); p < parts; p++ {
		want[p] = int64(len(log.acked[p]))
	}
	cl := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsetsAtStart(parts)}))
	ctx := testCtx(t, 60*time.Second)
	got := make(map[int32][]*kgo.Record)
	for {
		done := true
		for p, n := range want {
			if int64(len(got[p])) < n {
				done = false
			}
		}
		if done {
			break
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			for p, n := range want {
				t.Errorf("partition %d: read %d records, %d acknowledged", p, len(got[p]), n)
			}
			t.FailNow()
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], r) })
	}
	// Anything beyond the acknowledged count would be a duplicate or a
	// record nobody acknowledged: ask for the end offsets.
	ends := endOffsetsOf(t, c, topic)
	for p := int32(0); p < parts; p++ {
		if ends[p] != want[p] {
			t.Errorf("partition %d: end offset %d, but %d records were acknowledged", p, ends[p], want[p])
		}
		acked := log.acked[p]
		for i, a := range acked {
			if i >= len(got[p]) {
				break
			}
			r := got[p][i]
			wantV := fmt.Sprintf("%d-%d", p, a.seq)
			if string(r.Value) != wantV || r.Offset != a.offset {
				t.Errorf("partition %d: acknowledged %s at offset %d, read %s at offset %d", p, wantV, a.offset, r.Value, r.Offset)
				break
			}
		}
	}
}

func offsetsAtStart(parts int32) map[int32]kgo.Offset {
	out := make(map[int32]kgo.Offset)
	for p := int32(0); p < parts; p++ {
		out[p] = kgo.NewOffset().AtStart()
	}
	return out
}

func endOffsetsOf(t *testing.T, c *Cluster, topic string) map[int32]int64 {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	for {
		ends, err := c.Admin().ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatalf("list end offsets: %v", err)
		}
		out := make(map[int32]int64)
		var retry error
		ends.Each(func(o kadm.ListedOffset) {
			switch {
			case kerr.IsRetriable(o.Err) && ctx.Err() == nil:
				// OFFSET_NOT_AVAILABLE from a leader still learning its
				// high watermark, or a leader moving: ask again, as
				// consumers do.
				retry = o.Err
			case o.Err != nil:
				t.Fatalf("end offset %s-%d: %v", o.Topic, o.Partition, o.Err)
			}
			out[o.Partition] = o.Offset
		})
		if retry == nil {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterLeaderFailover: an idempotent acks=all producer keeps writing
// to an RF 3, min.insync.replicas 2 topic while the leader of each partition
// is in turn SIGKILLed and restarted, then in turn SIGTERMed and restarted.
// Every acknowledged record is read back exactly once, in order, and every
// restarted broker returns to the ISR.
func TestClusterLeaderFailover(t *testing.T) {
	const topic, parts = "roll", int32(3)
	c := StartCluster(t, 3, clusterOverrides...)
	c.CreateTopic(topic, parts, nil)
	prod := c.Client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(2000))
	sp := startSteadyProducer(t, prod, parts, 2*time.Millisecond)
	sp.waitProgress(t, 300, 20*time.Second, "the producer gets acknowledgements")

	for _, how := range []string{"SIGKILL", "SIGTERM"} {
		for p := int32(0); p < parts; p++ {
			st := c.WaitMetadata(topic, 10*time.Second, "a leader", func(map[int32]PartState) error { return nil })[p]
			nd := c.Node(st.Leader)
			t.Logf("%s the leader of %s-%d, node %d (epoch %d)", how, topic, p, nd.ID, st.Epoch)
			if how == "SIGKILL" {
				nd.Kill()
			} else {
				nd.Stop()
			}
			now := c.WaitNewLeader(topic, p, nd.ID, 20*time.Second)
			if now.Epoch <= st.Epoch {
				t.Errorf("%s-%d: new leader %d has epoch %d, not above %d", topic, p, now.Leader, now.Epoch, st.Epoch)
			}
			sp.waitProgress(t, 150, 20*time.Second, fmt.Sprintf("acks=all writes continue with node %d down", nd.ID))
			nd.Restart()
			c.WaitFullISR(topic, 30*time.Second)
		}
	}
	sp.finish(t, 60*time.Second)
	t.Logf("%d records acknowledged", sp.log.count())
	verifyExactlyOnce(t, c, topic, parts, sp.log)
}

// TestClusterNotEnoughReplicas: with two of a partition's three replicas
// down (brokers outside the etcd quorum, so etcd stays available), an
// acks=all write to an RF 3, min.insync.replicas 2 topic gets
// NOT_ENOUGH_REPLICAS and is never acknowledged, while acks=1 still works.
func TestClusterNotEnoughReplicas(t *testing.T) {
	const topic = "minisr"
	c := StartClusterWithClients(t, 3, 3, clusterOverrides...)
	c.CreateTopicAssigned(topic, map[int32][]int32{0: {4, 5, 6}})
	leader := c.WaitFullISR(topic, 10*time.Second)[0].Leader
	for _, id := range []int32{4, 5, 6} {
		if id != leader {
			c.Node(id).Kill()
		}
	}
	c.WaitMetadata(topic, 20*time.Second, "the ISR shrinks to the leader", func(md map[int32]PartState) error {
		if len(md[0].ISR) != 1 {
			return fmt.Errorf("ISR %v", md[0].ISR)
		}
		return nil
	})
	ctx := testCtx(t, 60*time.Second)
	all := c.Client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(2))
	for i := 0; i < 3; i++ {
		err := all.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "all-%d", i)}).FirstErr()
		if !errors.Is(err, kerr.NotEnoughReplicas) {
			t.Errorf("acks=all write %d with ISR 1 < min.insync.replicas 2: %v, want NOT_ENOUGH_REPLICAS", i, err)
		}
	}
	one := c.Client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err := one.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}).FirstErr(); err != nil {
		t.Errorf("acks=1 with the leader alive: %v", err)
	}
}

// TestClusterQuorumLost: two of the three brokers that hold the embedded
// etcd members are killed, so etcd has no quorum either. The survivor cannot
// shrink the ISR nor renew its lease: acks=all is never acknowledged (Kafka
// would time out; kbroker's leader fences itself), acks=1 still works.
func TestClusterQuorumLost(t *testing.T) {
	const topic = "noquorum"
	c := StartCluster(t, 3, clusterOverrides...)
	c.CreateTopic(topic, 1, nil)
	leader := c.WaitFullISR(topic, 10*time.Second)[0].Leader
	for _, nd := range c.Nodes {
		if nd.ID != leader {
			nd.Kill()
		}
	}
	ctx := testCtx(t, 60*time.Second)
	all := c.Client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(3), kgo.RecordDeliveryTimeout(15*time.Second), kgo.ProduceRequestTimeout(5*time.Second))
	for i := 0; i < 3; i++ {
		err := all.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "all-%d", i)}).FirstErr()
		if err == nil {
			t.Fatalf("acks=all write %d with one of three replicas alive was acknowledged", i)
		}
		t.Logf("acks=all write %d: %v", i, err)
	}
	one := c.Client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordDeliveryTimeout(15*time.Second))
	if err := one.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}).FirstErr(); err != nil {
		t.Errorf("acks=1 with the leader alive: %v", err)
	}
}

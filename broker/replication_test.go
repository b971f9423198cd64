package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func createReplicatedTopic(t *testing.T, c *testCluster, name string, partitions int32, minISR string) {
	t.Helper()
	adm := kadm.NewClient(c.client())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &minISR}, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp[name].Err; err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

// isrOf returns the ISR of a partition as the metadata image shows it.
func (c *testCluster) isrOf(topic string, partition int32) []int32 {
	for _, b := range c.brokers {
		if b == nil {
			continue
		}
		t := b.view.Image().Topics[topic]
		if t == nil {
			return nil
		}
		return t.Partitions[partition].State.ISR
	}
	return nil
}

func (c *testCluster) leaderOf(topic string, partition int32) int32 {
	for _, b := range c.brokers {
		if b == nil {
			continue
		}
		t := b.view.Image().Topics[topic]
		if t == nil {
			return -1
		}
		return t.Partitions[partition].State.Leader
	}
	return -1
}

// TestReplicationKeepsReplicasInSync: acks=all writes reach every replica,
// the ISR stays full, and followers hold the same log as the leader.
func TestReplicationKeepsReplicasInSync(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "repl", 3, "2")
	waitUntil(t, 10*time.Second, "every partition has a full ISR", func() bool {
		for p := int32(0); p < 3; p++ {
			if len(c.isrOf("repl", p)) != 3 {
				return false
			}
		}
		return true
	})
	cl := c.client(kgo.DefaultProduceTopic("repl"), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3000; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "followers catch up with the leaders", func() bool {
		for p := int32(0); p < 3; p++ {
			var ends []int64
			for _, b := range c.brokers {
				part, err := b.partitions.hosted("repl", p)
				if err != nil {
					return false
				}
				ends = append(ends, part.LogEndOffset(), part.HighWatermark())
			}
			if slices.Min(ends) != slices.Max(ends) {
				return false
			}
		}
		return true
	})
}

// TestLeaderFailoverLosesNoAckedWrite: with RF 3 and min.insync.replicas 2,
// an idempotent acks=all producer keeps running while the leader of the
// partition is killed; every acknowledged record is read back exactly once.
func TestLeaderFailoverLosesNoAckedWrite(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "failover", 1, "2")
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("failover", 0)) == 3 })

	cl := c.client(kgo.DefaultProduceTopic("failover"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	acked := map[string]int64{}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprint(i)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[v] = r.Offset
					mu.Unlock()
				}
			})
		}
	}
	produce(0, 2000)
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	old := c.leaderOf("failover", 0)
	c.kill(int(old) - 1)
	produce(2000, 4000)
	waitUntil(t, 20*time.Second, "a new leader is elected", func() bool {
		l := c.leaderOf("failover", 0)
		return l >= 0 && l != old
	})
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.start(int(old) - 1)

	consumer := c.client(kgo.ConsumeTopics("failover"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int64{}
	for len(seen) < len(acked) && ctx.Err() == nil {
		fs := consumer.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if prev, dup := seen[string(r.Value)]; dup {
				t.Errorf("record %s read twice (offsets %d and %d)", r.Value, prev, r.Offset)
			}
			seen[string(r.Value)] = r.Offset
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for v, off := range acked {
		if got, ok := seen[v]; !ok || got != off {
			t.Fatalf("acknowledged record %s at offset %d: read at %d (present %v)", v, off, got, ok)
		}
	}
	waitUntil(t, 20*time.Second, "the restarted broker rejoins the ISR", func() bool { return len(c.isrOf("failover", 0)) == 3 })
}

// TestNotEnoughReplicas: with two of three brokers down, acks=all is
// refused and never acknowledged; acks=1 still works.
func TestNotEnoughReplicas(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "minisr", 1, "2")
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("minisr", 0)) == 3 })
	leader := c.leaderOf("minisr", 0)
	for i := range c.brokers {
		if int32(i+1) != leader {
			c.kill(i)
		}
	}
	waitUntil(t, 20*time.Second, "the ISR shrinks to the leader", func() bool { return len(c.isrOf("minisr", 0)) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := c.client(kgo.DefaultProduceTopic("minisr"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(2), kgo.DisableIdempotentWrite())
	err := all.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR 1 < min 2: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	one := c.client(kgo.DefaultProduceTopic("minisr"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err := one.ProduceSync(ctx, &kgo.Record{Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatalf("acks=1: %v", err)
	}
}

// TestGroupCoordinatorFailover: committed offsets live in a replicated
// __consumer_offsets partition, so killing the coordinator's broker loses
// none of them and the group carries on with a new coordinator.
func TestGroupCoordinatorFailover(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "gf", 3, "2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := c.client(kgo.DefaultProduceTopic("gf"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := 0; i < 300; i++ {
		p.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	consume := func(n int) map[string]bool {
		// A short session: a member whose LeaveGroup had not been
		// replicated when the coordinator died is restored by the new
		// coordinator and must expire before the group rebalances (as in
		// Kafka).
		cl := c.client(kgo.ConsumerGroup("gf-group"), kgo.ConsumeTopics("gf"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(6*time.Second), kgo.RebalanceTimeout(6*time.Second))
		seen := map[string]bool{}
		for len(seen) < n && ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		cl.Close()
		return seen
	}
	if got := consume(300); len(got) != 300 {
		t.Fatalf("consumed %d of 300", len(got))
	}
	adm := kadm.NewClient(c.client())
	var node int32 = -1
	adm.FindGroupCoordinators(ctx, "gf-group").Each(func(d kadm.FindCoordinatorResponse) { node = d.NodeID })
	if node < 1 {
		t.Fatal("no coordinator found")
	}
	c.kill(int(node) - 1)
	for i := 300; i < 400; i++ {
		p.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A new member resumes from the committed offsets: only the 100 new
	// records arrive.
	got := consume(100)
	for v := range got {
		var i int
		fmt.Sscan(v, &i)
		if i < 300 {
			t.Fatalf("record %s re-read after the coordinator failover: committed offsets were lost", v)
		}
	}
}

// TestTransactionsAcrossBrokers: a transaction whose partitions are led by
// different brokers than its coordinator commits and aborts everywhere —
// markers travel to remote leaders, and transactions-v2 partition adds reach
// a remote coordinator.
func TestTransactionsAcrossBrokers(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "txx", 6, "2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := c.client(kgo.TransactionalID("cross"), kgo.DefaultProduceTopic("txx"))
	for round, commit := range []bool{true, false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 60; i++ {
			p.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%d-%d", round, i))}, nil)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d: %v", round, err)
		}
	}
	cons := c.client(kgo.ConsumeTopics("txx"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < 120 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Value[0] == '1' {
				t.Fatalf("aborted record %s visible to read_committed", r.Value)
			}
			got[string(r.Value)] = true
		})
	}
	if len(got) != 120 {
		t.Fatalf("read %d committed records, want 120", len(got))
	}
}

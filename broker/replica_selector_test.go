package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
)

func TestRackAwareReadReplica(t *testing.T) {
	racks := map[int32]string{1: "a", 2: "b", 3: "b", 4: "c"}
	rackOf := func(id int32) (string, bool) { r, ok := racks[id]; return r, ok }
	leader := replica.ReplicaView{ID: 1, LogEndOffset: 100}
	cases := []struct {
		name       string
		clientRack string
		candidates []replica.ReplicaView
		want       int32
	}{
		{"no client rack", "", []replica.ReplicaView{leader, {ID: 2, LogEndOffset: 100}}, -1},
		{"leader in the client's rack", "a", []replica.ReplicaView{leader, {ID: 2, LogEndOffset: 100}}, -1},
		{"no replica in the client's rack", "z", []replica.ReplicaView{leader, {ID: 2, LogEndOffset: 100}}, -1},
		{"one follower in the rack", "c", []replica.ReplicaView{leader, {ID: 2, LogEndOffset: 100}, {ID: 4, LogEndOffset: 90}}, 4},
		{"highest log end offset wins", "b", []replica.ReplicaView{leader, {ID: 2, LogEndOffset: 90}, {ID: 3, LogEndOffset: 95}}, 3},
		{"then most recently caught up", "b", []replica.ReplicaView{leader,
			{ID: 2, LogEndOffset: 95, SinceCaughtUp: time.Second}, {ID: 3, LogEndOffset: 95, SinceCaughtUp: time.Millisecond}}, 3},
	}
	for _, tc := range cases {
		if got := rackAwareReadReplica(tc.candidates, tc.clientRack, rackOf); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// batchSources records which broker each fetched batch came from.
type batchSources struct {
	mu   sync.Mutex
	from map[int32]int
}

func (s *batchSources) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, _ int32, _ kgo.FetchBatchMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from[meta.NodeID]++
}

func (s *batchSources) snapshot() map[int32]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]int, len(s.from))
	for k, v := range s.from {
		out[k] = v
	}
	return out
}

// TestFollowerFetching (KIP-392): with the rack-aware selector, a consumer
// that sends its rack reads every batch from the in-sync replica in its
// rack, in order, and keeps tailing it as new records are acknowledged; a
// consumer in the leader's rack, or in no known rack, reads from the
// leader. Without a selector, the rack is ignored.
func TestFollowerFetching(t *testing.T) {
	c := startCluster(t, 3, func(cfg *config.Config) {
		cfg.BrokerRack = fmt.Sprintf("rack-%d", cfg.NodeID)
		cfg.ReplicaSelectorClass = config.RackAwareReplicaSelector
	})
	createReplicatedTopic(t, c, "ff", 1, "2")
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("ff", 0)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := c.client(kgo.DefaultProduceTopic("ff"), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprint(i))})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 1000)

	leader := c.leaderOf("ff", 0)
	follower := leader%3 + 1
	// consume reads records [0, n) with a consumer in rack, checking order,
	// and returns the brokers the batches came from.
	consume := func(rack string, n int, more func()) map[int32]int {
		t.Helper()
		src := &batchSources{from: map[int32]int{}}
		cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"ff": {0: kgo.NewOffset().AtStart()}}),
			kgo.Rack(rack), kgo.WithHooks(src), kgo.FetchMaxWait(20*time.Second))
		next := 0
		read := func(until int, within time.Duration) {
			t.Helper()
			pctx, pcancel := context.WithTimeout(ctx, within)
			defer pcancel()
			for next < until {
				fs := cons.PollFetches(pctx)
				if pctx.Err() != nil {
					t.Fatalf("rack %q: read %d of %d records within %v; batches by broker %v", rack, next, until, within, src.snapshot())
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Errorf("rack %q: fetch: %v", rack, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if string(r.Value) != fmt.Sprint(next) || r.Offset != int64(next) {
						t.Fatalf("rack %q: record %d: offset %d value %q", rack, next, r.Offset, r.Value)
					}
					next++
				})
			}
		}
		read(n, 20*time.Second)
		if more != nil {
			// A consumer tailing a follower gets new records when the
			// follower's high watermark moves, not at its max wait (20 s).
			more()
			read(n+100, 5*time.Second)
		}
		return src.snapshot()
	}

	from := consume(fmt.Sprintf("rack-%d", follower), 1000, func() { produce(1000, 1100) })
	if len(from) != 1 || from[follower] == 0 {
		t.Errorf("consumer in rack-%d read batches from brokers %v; want only the follower %d (leader %d)", follower, from, follower, leader)
	}
	if from := consume(fmt.Sprintf("rack-%d", leader), 1100, nil); len(from) != 1 || from[leader] == 0 {
		t.Errorf("consumer in the leader's rack read batches from %v; want only the leader %d", from, leader)
	}
	if from := consume("elsewhere", 1100, nil); len(from) != 1 || from[leader] == 0 {
		t.Errorf("consumer in an unknown rack read batches from %v; want only the leader %d", from, leader)
	}
}

// TestFetchFromFollowerVersions: a follower serves consumers from Fetch
// v11 (KIP-392) up to its high watermark, and answers older versions with
// NOT_LEADER_OR_FOLLOWER, as Kafka does. Without replica.selector.class the
// leader never redirects, whatever rack the consumer names.
func TestFetchFromFollowerVersions(t *testing.T) {
	c := startCluster(t, 3, func(cfg *config.Config) { cfg.BrokerRack = fmt.Sprintf("rack-%d", cfg.NodeID) })
	createReplicatedTopic(t, c, "ffv", 1, "2")
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("ffv", 0)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := c.client(kgo.DefaultProduceTopic("ffv"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	follower := c.leaderOf("ffv", 0)%3 + 1
	fb := c.brokers[follower-1]
	waitUntil(t, 10*time.Second, "the follower learns the high watermark", func() bool {
		p, err := fb.partitions.hosted("ffv", 0)
		return err == nil && p.HighWatermark() == 1
	})
	// rawRequest pins the version on the client's first seed: the follower.
	cl := newClient(t, fb.listeners[0].Addr().String())
	for _, v := range []int16{10, 11, 13} {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		req.ReplicaID, req.ReplicaState.ID = -1, -1
		req.MaxBytes, req.SessionEpoch = 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "ffv", fb.view.Image().Topics["ffv"].ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := rawRequest(t, cl, req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		switch {
		case v < 11 && p.ErrorCode != kerr.NotLeaderForPartition.Code:
			t.Errorf("v%d to a follower: error %d, want NOT_LEADER_OR_FOLLOWER", v, p.ErrorCode)
		case v >= 11 && (p.ErrorCode != 0 || p.HighWatermark != 1 || len(p.RecordBatches) == 0):
			t.Errorf("v%d to a follower: error %d, high watermark %d, %d record bytes; want records up to 1", v, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
		}
	}

	src := &batchSources{from: map[int32]int{}}
	cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"ffv": {0: kgo.NewOffset().AtStart()}}),
		kgo.Rack(fmt.Sprintf("rack-%d", follower)), kgo.WithHooks(src))
	if fs := cons.PollFetches(ctx); fs.NumRecords() != 1 {
		t.Fatalf("consumer read %d records, want 1 (errors %v)", fs.NumRecords(), fs.Errors())
	}
	if leader := c.leaderOf("ffv", 0); src.snapshot()[leader] != 1 {
		t.Errorf("without replica.selector.class the consumer read batches from %v; want the leader %d", src.snapshot(), leader)
	}
}

// TestPreferredReplicaInIncrementalSession: a leader that starts naming a
// preferred read replica inside an incremental fetch session includes the
// partition even though nothing else about it changed, as Kafka's
// CachedPartition does — otherwise the client would poll an empty leader
// for ever.
func TestPreferredReplicaInIncrementalSession(t *testing.T) {
	c := startCluster(t, 3, func(cfg *config.Config) {
		cfg.BrokerRack = fmt.Sprintf("rack-%d", cfg.NodeID)
		cfg.ReplicaSelectorClass = config.RackAwareReplicaSelector
	})
	createReplicatedTopic(t, c, "ffs", 1, "2")
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("ffs", 0)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := c.client(kgo.DefaultProduceTopic("ffs"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	leader := c.leaderOf("ffs", 0)
	follower := leader%3 + 1
	// rawRequest pins the version, on its own connection to the leader.
	conn := newClient(t, c.brokers[leader-1].listeners[0].Addr().String())
	fetch := func(sessionID, epoch int32, rack string, withPartition bool) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxBytes, req.Rack = -1, 1<<20, rack
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if withPartition {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "ffs"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp := rawRequest(t, conn, req).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("fetch session %d epoch %d: error %d", sessionID, epoch, resp.ErrorCode)
		}
		return resp
	}
	first := fetch(0, 0, "", true)
	if first.SessionID == 0 || len(first.Topics) != 1 {
		t.Fatalf("full fetch: session %d, %d topics; want a session and the partition", first.SessionID, len(first.Topics))
	}
	next := fetch(first.SessionID, 1, fmt.Sprintf("rack-%d", follower), false)
	if len(next.Topics) != 1 || len(next.Topics[0].Partitions) != 1 {
		t.Fatalf("incremental fetch from rack-%d: %d topics, want the partition naming replica %d", follower, len(next.Topics), follower)
	}
	if got := next.Topics[0].Partitions[0]; got.PreferredReadReplica != follower || got.ErrorCode != 0 {
		t.Fatalf("preferred read replica %d (error %d), want %d", got.PreferredReadReplica, got.ErrorCode, follower)
	}
}

package broker

import (
	"context"
	"errors"
	"log/slog"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/coordinator/group"
)

var errInjectedRead = errors.New("test: injected read error")

// failingReads is a coordinator Log whose Reads fail while its shared
// counter, decremented by each Read, is positive: a load that hits read
// errors. The counter is shared by the shards built for one partition, so
// it counts across the loader's attempts.
type failingReads struct {
	group.Log
	fails *atomic.Int64
}

func (l failingReads) Read(offset int64, maxBytes int) ([]byte, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, errInjectedRead
	}
	return l.Log.Read(offset, maxBytes)
}

// failGroupLoads makes the loads of b's __consumer_offsets partition p
// (every partition if p < 0) fail their reads, through the Log the shards
// read, while the returned counter is positive; it starts at fails.
func failGroupLoads(b *Broker, p int32, fails int64) *atomic.Int64 {
	n := &atomic.Int64{}
	n.Store(fails)
	g := b.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	orig := g.newShard
	g.newShard = func(part int32, leaderEpoch int32, rp *replica.Partition, logger *slog.Logger) *group.Shard {
		if p >= 0 && part != p {
			return orig(part, leaderEpoch, rp, logger)
		}
		return group.NewShard(part, failingReads{partitionLog{rp}, n}, g.config(), logger)
	}
	return n
}

// TestCoordinatorLoadRetriedAfterReadErrors: when the group coordinator
// fails over and the new leader's load of the __consumer_offsets partition
// hits read errors the first three times, the new leader retries by itself
// and then serves the offsets committed before the failover.
func TestCoordinatorLoadRetriedAfterReadErrors(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "load-retry", 1, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(c.client())
	const grp = "load-retry-group"
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "load-retry", Partition: 0, At: 42, LeaderEpoch: -1})
	// The coordinator's broker may learn of the new topic a moment after
	// the creation returns (UNKNOWN_TOPIC_OR_PARTITION meanwhile); a client
	// retries, and so does this test.
	var commitErr error
	waitUntil(t, 20*time.Second, "the offset commit succeeds", func() bool {
		resp, err := adm.CommitOffsets(ctx, grp, offsets)
		if commitErr = err; err == nil {
			commitErr = resp.Error()
		}
		return commitErr == nil
	})
	coordinator := coordinatorOf(ctx, t, adm, grp)
	gp := group.PartitionFor(grp, c.config(0).OffsetsTopicNumPartitions)

	fails := map[int32]*atomic.Int64{}
	for _, b := range c.brokers {
		if b.nodeID != coordinator {
			fails[b.nodeID] = failGroupLoads(b, gp, 3)
		}
	}
	c.stop(int(coordinator) - 1)
	adm = kadm.NewClient(c.client()) // one that knows nothing of the stopped broker

	// Each poll is bounded, so that a load that never completes fails the
	// test here rather than in the client's retries.
	waitUntil(t, 30*time.Second, "the new coordinator serves the committed offset", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		resp, err := adm.FetchOffsets(pctx, grp)
		if err != nil || resp.Error() != nil {
			return false
		}
		o, ok := resp.Lookup("load-retry", 0)
		return ok && o.Err == nil && o.At == 42
	})
	leader := coordinatorOf(ctx, t, adm, grp)
	if leader == coordinator {
		t.Fatalf("coordinator still %d after it stopped", leader)
	}
	if left := fails[leader].Load(); left > 0 {
		t.Fatalf("new coordinator %d served with %d injected read failures left: its load never failed", leader, left)
	}
	sh, ok := c.brokers[leader-1].groups.running(gp)
	if !ok || !sh.Loaded() {
		t.Fatalf("partition %d on broker %d: running %v, loaded %v", gp, leader, ok, ok && sh.Loaded())
	}
	waitUntil(t, 10*time.Second, "every loader to finish", func() bool { return loaderGoroutines() == 0 })
}

// TestCoordinatorLoadRetryStopsAtShutdown: loads that keep failing are
// retried until the broker shuts down, and shutdown waits for the loaders
// to stop.
func TestCoordinatorLoadRetryStopsAtShutdown(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.OffsetsTopicReplicationFactor, c.OffsetsTopicNumPartitions = 1, 1
	})
	fails := failGroupLoads(tb.Broker, -1, 1<<40)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.addr))
	// FindCoordinator creates __consumer_offsets and starts its shard.
	coordinatorOf(ctx, t, adm, "stuck-group")
	waitUntil(t, 10*time.Second, "three failed loads", func() bool { return fails.Load() <= 1<<40-3 })
	if sh, ok := tb.groups.running(0); !ok || sh.Loaded() {
		t.Fatalf("shard running %v, loaded %v; want running and not loaded", ok, ok && sh.Loaded())
	}
	if n := loaderGoroutines(); n != 1 {
		t.Fatalf("%d loader goroutines while one load keeps failing, want 1", n)
	}

	done := make(chan error, 1)
	b := tb.Broker
	tb.Broker = nil // shut down here, not by the cleanup
	// Bounded below: a loader that does not stop would hang closeAll.
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		done <- b.Shutdown(sctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown did not return: a loader did not stop")
	}
	if n := loaderGoroutines(); n != 0 {
		t.Fatalf("%d loader goroutines left after shutdown", n)
	}
}

// loaderGoroutines counts the goroutines running shardSet.load.
func loaderGoroutines() int {
	buf := make([]byte, 1<<24)
	buf = buf[:goruntime.Stack(buf, true)]
	return strings.Count(string(buf), "broker.(*shardSet[...]).load(")
}

// coordinatorOf is the node coordinating group grp.
func coordinatorOf(ctx context.Context, t *testing.T, adm *kadm.Client, grp string) int32 {
	t.Helper()
	var node int32 = -1
	waitUntil(t, 20*time.Second, "a coordinator for "+grp, func() bool {
		adm.FindGroupCoordinators(ctx, grp).Each(func(d kadm.FindCoordinatorResponse) {
			if d.Err == nil {
				node = d.NodeID
			}
		})
		return node > 0
	})
	return node
}

package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/etcd"
)

// coordinatorShard is what the group and transaction coordinators have in
// common: one shard per partition of their internal topic, loaded from it.
type coordinatorShard interface {
	Load(ctx context.Context) error
	Close()
	Loaded() bool
}

// internalTopic describes a coordinator's internal topic.
type internalTopic struct {
	name       string
	partitions int32
	rf         int16
	configs    map[string]string
	rfKey      string // the config key users set to fix a too-high replication factor
}

// shardSet owns the coordinator shards of one internal topic on this broker:
// one per partition it leads, started (and loaded in the background) the
// first time it is needed and closed when this broker stops leading it.
type shardSet[S coordinatorShard] struct {
	b        *Broker
	kind     string // "group" or "transaction", for logs
	topic    func() internalTopic
	newShard func(p int32, leaderEpoch int32, part *replica.Partition, logger *slog.Logger) S

	createMu sync.Mutex // one creation of the topic at a time
	mu       struct {
		sync.Mutex
		shards map[int32]S
	}
}

func newShardSet[S coordinatorShard](b *Broker, kind string, topic func() internalTopic, newShard func(int32, int32, *replica.Partition, *slog.Logger) S) *shardSet[S] {
	s := &shardSet[S]{b: b, kind: kind, topic: topic, newShard: newShard}
	s.mu.shards = map[int32]S{}
	return s
}

// partitionFor returns the internal topic, creating it on first use as Kafka
// does, and the partition that key hashes to.
func (s *shardSet[S]) partitionFor(ctx context.Context, key string, hash func(string, int32) int32) (*etcd.Topic, int32, *kerr.Error) {
	name := s.topic().name
	t := s.b.view.Image().Topics[name]
	if t == nil {
		if err := s.createTopic(ctx); err != nil {
			s.b.logger.Warn("cannot create internal topic yet", "topic", name, "err", err)
			return nil, -1, kerr.CoordinatorNotAvailable
		}
		if t = s.b.view.Image().Topics[name]; t == nil {
			return nil, -1, kerr.CoordinatorNotAvailable
		}
	}
	return t, hash(key, int32(len(t.Partitions))), nil
}

func (s *shardSet[S]) createTopic(ctx context.Context) error {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	it := s.topic()
	if s.b.view.Image().Topics[it.name] != nil {
		return nil
	}
	spec, states, terr := s.b.planTopic(s.b.view.Image(), topicRequest{name: it.name, partitions: it.partitions, rf: it.rf, configs: it.configs})
	if terr == nil {
		terr = s.b.createTopic(ctx, spec, states)
	}
	if terr != nil && terr.err != kerr.TopicAlreadyExists {
		if terr.err == kerr.InvalidReplicationFactor {
			return fmt.Errorf("%s (%s is %d; set it to at most the number of brokers)", terr.msg, it.rfKey, it.rf)
		}
		return terr
	}
	return nil
}

// shardForKey returns the shard coordinating key, or the error Kafka answers
// with: COORDINATOR_NOT_AVAILABLE while the topic cannot be created,
// NOT_COORDINATOR when another broker leads the partition.
func (s *shardSet[S]) shardForKey(ctx context.Context, key string, hash func(string, int32) int32) (S, *kerr.Error) {
	var zero S
	t, p, kerrErr := s.partitionFor(ctx, key, hash)
	if kerrErr != nil {
		return zero, kerrErr
	}
	if t.Partitions[p].State.Leader != s.b.nodeID {
		return zero, kerr.NotCoordinator
	}
	sh, ok := s.shard(p)
	if !ok {
		return zero, kerr.NotCoordinator
	}
	// A freshly started shard of a new or small partition loads in
	// milliseconds; wait briefly rather than send the client into a
	// COORDINATOR_LOAD_IN_PROGRESS retry loop. A long load still answers
	// that (from the shard).
	deadline := time.Now().Add(shardLoadWait)
	for !sh.Loaded() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return sh, nil
}

// shardLoadWait bounds how long a request waits for its shard to load.
const shardLoadWait = 2 * time.Second

// coordinatorNode is the live broker leading key's partition, for
// FindCoordinator.
func (s *shardSet[S]) coordinatorNode(ctx context.Context, key string, hash func(string, int32) int32) (int32, *kerr.Error) {
	t, p, kerrErr := s.partitionFor(ctx, key, hash)
	if kerrErr != nil {
		return -1, kerrErr
	}
	leader := t.Partitions[p].State.Leader
	if _, alive := s.b.view.Image().Brokers[leader]; !alive {
		return -1, kerr.CoordinatorNotAvailable
	}
	return leader, nil
}

// shard returns the running shard of partition p, starting it — and loading
// its state from the partition in the background — if needed.
func (s *shardSet[S]) shard(p int32) (S, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.mu.shards[p]; ok {
		return sh, true
	}
	var zero S
	name := s.topic().name
	part, err := s.b.partitions.leaderFor(name, p)
	if err != nil {
		return zero, false
	}
	logger := s.b.logger.With("coordinator", s.kind)
	sh := s.newShard(p, part.LeaderEpoch(), part, logger)
	s.mu.shards[p] = sh
	go func() {
		start := time.Now()
		// A new leader's high watermark may trail its log end until the
		// followers fetch from it; coordinator state above the HW would be
		// missed by the load. Wait (bounded) until the log is committed up
		// to its end, as a new Kafka coordinator loads to the log end.
		deadline := time.Now().Add(30 * time.Second)
		for part.HighWatermark() < part.LogEndOffset() && time.Now().Before(deadline) && s.b.ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if err := sh.Load(s.b.ctx); err != nil {
			if s.b.ctx.Err() == nil {
				logger.Error("loading coordinator shard failed", "partition", p, "err", err)
			}
			return
		}
		took := time.Since(start)
		level := slog.LevelDebug
		if took > time.Second {
			level = slog.LevelInfo
		}
		logger.Log(s.b.ctx, level, "loaded coordinator shard", "partition", p, "took", took.Round(time.Millisecond).String())
	}()
	return sh, true
}

// all lists the running shards.
func (s *shardSet[S]) all() []S {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]S, 0, len(s.mu.shards))
	for _, sh := range s.mu.shards {
		out = append(out, sh)
	}
	return out
}

// startLed starts a shard for every partition this broker leads, so state
// comes back (and expires) without waiting for a client to ask.
func (s *shardSet[S]) startLed(img *etcd.Image) {
	t := img.Topics[s.topic().name]
	if t == nil {
		return
	}
	for _, p := range t.Partitions {
		if p.State.Leader == s.b.nodeID {
			s.shard(p.ID)
		}
	}
}

// reconcile closes shards of partitions this broker no longer leads.
func (s *shardSet[S]) reconcile(_ *etcd.Image) {
	s.mu.Lock()
	// Read the image under the lock: a shard started from a newer image
	// than this call's must not be closed by it.
	t := s.b.view.Image().Topics[s.topic().name]
	var closing []S
	for p, sh := range s.mu.shards {
		if t == nil || int(p) >= len(t.Partitions) || t.Partitions[p].State.Leader != s.b.nodeID {
			closing = append(closing, sh)
			delete(s.mu.shards, p)
		}
	}
	s.mu.Unlock()
	for _, sh := range closing {
		sh.Close()
	}
}

func (s *shardSet[S]) closeAll() {
	s.mu.Lock()
	shards := s.mu.shards
	s.mu.shards = map[int32]S{}
	s.mu.Unlock()
	for _, sh := range shards {
		sh.Close()
	}
}

// partitionLog adapts a hosted internal-topic partition to the coordinators'
// Log interface.
type partitionLog struct{ p *replica.Partition }

func (l partitionLog) Append(ctx context.Context, batch []byte) (int64, error) {
	if !l.p.EnoughReplicas() {
		return -1, kerr.NotEnoughReplicas
	}
	res, err := l.p.AppendAsCoordinator(batch)
	if err != nil {
		return -1, fmt.Errorf("append to %s-%d: %w", l.p.Topic, l.p.Index, err)
	}
	// Coordinator state counts only once the ISR holds it (acks=all), so a
	// new leader loading the partition after a failover sees it too.
	if err := l.p.WaitForHighWatermark(ctx, res.LastOffset+1); err != nil {
		return -1, fmt.Errorf("replicate %s-%d: %w", l.p.Topic, l.p.Index, err)
	}
	return res.BaseOffset, nil
}

func (l partitionLog) Read(offset int64, maxBytes int) ([]byte, error) {
	rr, err := l.p.Read(offset, maxBytes, l.p.HighWatermark())
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	return rr.ReadAll()
}

func (l partitionLog) LogStartOffset() int64 { return l.p.LogStartOffset() }

package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/coordinator/runtime"
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
//
// A shard whose load fails is replaced by a new one, loaded again, with
// backoff (runtime.RetryLoad), for as long as this broker leads the
// partition: the partition's loader goroutine, which reconcile and closeAll
// stop, does that.
type shardSet[S coordinatorShard] struct {
	b     *Broker
	kind  string // "group" or "transaction", for logs
	topic func() internalTopic
	// newShard builds a shard, not yet loaded; it is called with mu held
	// (tests replace it under mu).
	newShard func(p int32, leaderEpoch int32, part *replica.Partition, logger *slog.Logger) S

	loaders sync.WaitGroup // the loader goroutines; closeAll waits for them
	mu      struct {
		sync.Mutex
		shards map[int32]*ledShard[S]
		closed bool // by closeAll: no more shards start
	}
}

// ledShard is the shard of one partition this broker leads. sh is
// guarded by shardSet.mu: the loader replaces a shard whose load failed.
type ledShard[S coordinatorShard] struct {
	sh S
	// stop ends the loader: reconcile and closeAll call it when they
	// remove the entry, the loader when it finds the partition led
	// elsewhere.
	stop context.CancelFunc
}

func newShardSet[S coordinatorShard](b *Broker, kind string, topic func() internalTopic, newShard func(int32, int32, *replica.Partition, *slog.Logger) S) *shardSet[S] {
	s := &shardSet[S]{b: b, kind: kind, topic: topic, newShard: newShard}
	s.mu.shards = map[int32]*ledShard[S]{}
	return s
}

// partitionFor returns the internal topic and the partition that key
// hashes to. A missing topic is created as Kafka's FindCoordinator creates
// it, through auto-creation (forwarded to the controller when this broker
// is not it; no lock is held meanwhile): the caller waits a moment for it
// and otherwise answers COORDINATOR_NOT_AVAILABLE, which clients retry.
func (s *shardSet[S]) partitionFor(ctx context.Context, key string, hash func(string, int32) int32) (*etcd.Topic, int32, *kerr.Error) {
	name := s.topic().name
	t := s.b.view.Image().Topics[name]
	if t == nil {
		s.b.startAutoCreate(name)
		wait, cancel := context.WithTimeout(ctx, internalTopicWait)
		defer cancel()
		for t = s.b.view.Image().Topics[name]; t == nil; t = s.b.view.Image().Topics[name] {
			select {
			case <-wait.Done():
				return nil, -1, kerr.CoordinatorNotAvailable
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return t, hash(key, int32(len(t.Partitions))), nil
}

// internalTopicWait is how long a coordinator lookup waits for the
// internal topic it started creating before answering
// COORDINATOR_NOT_AVAILABLE: long enough for one broker's own creation, so
// a client's first lookup usually succeeds.
const internalTopicWait = time.Second

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
	// that (from the shard). A shard whose load failed is replaced while
	// we wait: follow it.
	deadline := time.Now().Add(shardLoadWait)
	for !sh.Loaded() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		if cur, ok := s.running(p); ok {
			sh = cur
		}
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
	if sh, ok := s.running(p); ok {
		return sh, true
	}
	var zero S
	name := s.topic().name
	// Outside the lock: the first use of a partition opens its log.
	part, err := s.b.partitions.leaderFor(name, p)
	if err != nil {
		return zero, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.mu.shards[p]; ok {
		return e.sh, true
	}
	// Check the image under the lock, as reconcile reads it: a shard
	// started from an image older than reconcile's is closed by it.
	if s.mu.closed || !s.leadsLocked(p) {
		return zero, false
	}
	logger := s.b.logger.With("coordinator", s.kind)
	ctx, stop := context.WithCancel(s.b.ctx)
	e := &ledShard[S]{sh: s.newShard(p, part.LeaderEpoch(), part, logger), stop: stop}
	s.mu.shards[p] = e
	s.loaders.Add(1)
	go s.load(ctx, p, e, e.sh, part, logger)
	return e.sh, true
}

// running returns the shard of partition p if one is running.
func (s *shardSet[S]) running(p int32) (S, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.mu.shards[p]; ok {
		return e.sh, true
	}
	var zero S
	return zero, false
}

// leadsLocked reports whether the current image has this broker leading
// partition p. Call it with mu held.
func (s *shardSet[S]) leadsLocked(p int32) bool {
	t := s.b.view.Image().Topics[s.topic().name]
	return t != nil && int(p) < len(t.Partitions) && t.Partitions[p].State.Leader == s.b.nodeID
}

// load is the loader of partition p: it loads sh, the shard of entry e,
// and while loads fail, replaces the shard and loads again with backoff,
// until one loads, ctx ends (reconcile, closeAll or shutdown) or the
// partition is led elsewhere.
func (s *shardSet[S]) load(ctx context.Context, p int32, e *ledShard[S], sh S, part *replica.Partition, logger *slog.Logger) {
	defer s.loaders.Done()
	defer e.stop()
	start := time.Now()
	attempts, err := runtime.RetryLoad(ctx, runtime.RetryLoadConfig{Topic: s.topic().name, Partition: p, Logger: logger},
		func(ctx context.Context, attempt int) error {
			if attempt > 1 {
				var err error
				if sh, part, err = s.replace(p, e, logger); err != nil {
					return err
				}
			}
			awaitCommittedEnd(ctx, part)
			return sh.Load(ctx)
		})
	if err != nil || attempts > 1 {
		return // stopped, or RetryLoad logged the recovery
	}
	took := time.Since(start)
	level := slog.LevelDebug
	if took > time.Second {
		level = slog.LevelInfo
	}
	logger.Log(ctx, level, "loaded coordinator shard", "partition", p, "took", took.Round(time.Millisecond).String())
}

// replace puts a new shard in place of e's, whose load failed, and closes
// the failed one. If e was removed or the image has partition p led
// elsewhere, it stops the loader instead (reconcile closes the shard).
func (s *shardSet[S]) replace(p int32, e *ledShard[S], logger *slog.Logger) (S, *replica.Partition, error) {
	var zero S
	s.mu.Lock()
	current := s.currentLocked(p, e)
	s.mu.Unlock()
	if !current {
		e.stop()
		return zero, nil, context.Canceled
	}
	name := s.topic().name
	part, err := s.b.partitions.leaderFor(name, p) // outside the lock: it may open the log
	if err != nil {
		return zero, nil, fmt.Errorf("%s-%d: %w", name, p, err)
	}
	s.mu.Lock()
	if !s.currentLocked(p, e) {
		s.mu.Unlock()
		e.stop()
		return zero, nil, context.Canceled
	}
	failed := e.sh
	e.sh = s.newShard(p, part.LeaderEpoch(), part, logger)
	sh := e.sh
	s.mu.Unlock()
	failed.Close()
	return sh, part, nil
}

// currentLocked reports whether e is still partition p's entry and the
// image has this broker leading p. Call it with mu held.
func (s *shardSet[S]) currentLocked(p int32, e *ledShard[S]) bool {
	return s.mu.shards[p] == e && s.leadsLocked(p)
}

// awaitCommittedEnd waits (bounded) until part's high watermark reaches
// its log end. A new leader's high watermark may trail its log end until
// the followers fetch from it; coordinator state above the HW would be
// missed by the load. As a new Kafka coordinator, load to the log end.
func awaitCommittedEnd(ctx context.Context, part *replica.Partition) {
	deadline := time.Now().Add(30 * time.Second)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for part.HighWatermark() < part.LogEndOffset() && time.Now().Before(deadline) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// all lists the running shards.
func (s *shardSet[S]) all() []S {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]S, 0, len(s.mu.shards))
	for _, e := range s.mu.shards {
		out = append(out, e.sh)
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

// reconcile closes shards of partitions this broker no longer leads, and
// stops their loaders.
func (s *shardSet[S]) reconcile(_ *etcd.Image) {
	s.mu.Lock()
	// Read the image under the lock: a shard started from a newer image
	// than this call's must not be closed by it.
	t := s.b.view.Image().Topics[s.topic().name]
	var closing []ledShard[S]
	for p, e := range s.mu.shards {
		if t == nil || int(p) >= len(t.Partitions) || t.Partitions[p].State.Leader != s.b.nodeID {
			closing = append(closing, ledShard[S]{sh: e.sh, stop: e.stop}) // e.sh is read under mu
			delete(s.mu.shards, p)
		}
	}
	s.mu.Unlock()
	for _, e := range closing {
		e.stop()
		e.sh.Close()
	}
}

// closeAll closes every shard and waits for the loaders to stop; no shard
// starts after it.
func (s *shardSet[S]) closeAll() {
	s.mu.Lock()
	closing := make([]ledShard[S], 0, len(s.mu.shards))
	for _, e := range s.mu.shards {
		closing = append(closing, ledShard[S]{sh: e.sh, stop: e.stop})
	}
	s.mu.shards = map[int32]*ledShard[S]{}
	s.mu.closed = true
	s.mu.Unlock()
	for _, e := range closing {
		e.stop()
		e.sh.Close()
	}
	s.loaders.Wait()
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

// Package fetcher replicates follower partitions from their leaders with
// the ordinary Fetch API, as Kafka's ReplicaFetcherManager and
// AbstractFetcherThread do.
//
// The Manager runs one fetcher goroutine per source broker (Kafka's
// num.replica.fetchers=1), shared by every partition this broker follows
// from that leader. Each round the fetcher sends one sessionless Fetch for
// all its partitions that are not backing off, with this broker's replica
// identity, each partition's log end offset as the fetch offset, the epoch
// of its last fetched batch (KIP-320) and its current leader epoch. Per
// partition in the answer it appends the leader's batches verbatim and
// follows the leader's high watermark, truncates to the divergence point
// the leader reports, resolves OFFSET_OUT_OF_RANGE through ListOffsets, or
// backs the partition off for replica.fetch.backoff.ms while the metadata
// image moves it.
//
// Ownership: the Manager owns which partitions are followed from which
// broker (Manager.mu); each fetcher goroutine owns its kgo client, its
// request building and the application of responses. A Replica's log is
// changed only while its fetcher holds applyMu, so Unfollow can wait for an
// apply in progress to finish and then hand the partition back to the
// caller (to make it leader, or close it) with no fetch still touching it.
//
// Lock order: Manager.opMu → Manager.mu → fetcher.mu, and fetcher.applyMu →
// fetcher.mu; a Replica's own locks are taken under applyMu, never under
// Manager.mu or fetcher.mu. No network I/O happens under any of these
// locks: out-of-range resolution asks the leader first and takes applyMu
// only to truncate. Callers must not call Follow or Unfollow while holding
// a lock that a Replica method takes.
//
// The package keeps no on-disk state.
package fetcher

import (
	"log/slog"
	"sync"
	"time"
)

// Replica is a follower partition, as the fetcher drives it (implemented by
// *replica.Partition). Implementations must be comparable (pointer types):
// the Manager tells a partition's incarnations apart by identity.
type Replica interface {
	TopicName() string
	PartitionIndex() int32
	// TopicUUID is sent as the topic ID from Fetch v13.
	TopicUUID() [16]byte
	// FollowerState is the fetch position: the log end offset, the epoch of
	// the last batch in the log (-1 if none) and the leader epoch this
	// broker knows for the partition.
	FollowerState() (fetchOffset int64, lastFetchedEpoch, currentLeaderEpoch int32)
	// AppendAsFollower appends the leader's batches as they are and moves
	// the high watermark to min(leaderHW, log end offset).
	AppendAsFollower(batches []byte, leaderHW int64) error
	// EndOffsetForEpoch is the largest local epoch <= epoch and its end
	// offset, (-1, -1) when unknown.
	EndOffsetForEpoch(epoch int32) (int32, int64)
	TruncateTo(offset int64) error
	TruncateFullyAndStartAt(offset int64) error
}

// Config configures the Manager. Zero fields take Kafka's defaults.
type Config struct {
	// NodeID is this broker's node.id, sent as the replica ID.
	NodeID int32
	// BrokerEpoch is this broker's registration epoch, sent as the replica
	// epoch (Fetch v15+ ReplicaState). nil sends -1.
	BrokerEpoch func() int64
	// MaxBytes is replica.fetch.response.max.bytes.
	MaxBytes int32
	// PartitionMaxBytes is replica.fetch.max.bytes.
	PartitionMaxBytes int32
	// MaxWait is replica.fetch.wait.max.ms.
	MaxWait time.Duration
	// MinBytes is replica.fetch.min.bytes.
	MinBytes int32
	// Backoff is replica.fetch.backoff.ms: the pause after a failed fetch,
	// for the whole request or one partition.
	Backoff time.Duration
	// RequestTimeout bounds a request beyond MaxWait
	// (replica.socket.timeout.ms).
	RequestTimeout time.Duration
	// Address resolves a broker's inter-broker endpoint from the metadata
	// image; it is asked before every request, so a leader that moves is
	// followed to its new address.
	Address func(brokerID int32) (hostPort string, ok bool)
	// OnLag, if set, is told each follower's lag behind the leader's high
	// watermark after every successful fetch of it.
	OnLag func(topic string, partition int32, lag int64)
	// Logger is the broker's logger, which already carries node; the
	// fetcher's lines add leader (and topic and partition where one
	// partition is concerned). nil discards.
	Logger *slog.Logger
}

// NewConfig returns Kafka's defaults.
func NewConfig() Config {
	return Config{
		MaxBytes:          10 << 20,
		PartitionMaxBytes: 1 << 20,
		MaxWait:           500 * time.Millisecond,
		MinBytes:          1,
		Backoff:           time.Second,
		RequestTimeout:    30 * time.Second,
	}
}

// withDefaults fills zero fields with NewConfig's values.
func (c Config) withDefaults() Config {
	d := NewConfig()
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = d.PartitionMaxBytes
	}
	if c.MaxWait <= 0 {
		c.MaxWait = d.MaxWait
	}
	if c.MinBytes <= 0 {
		c.MinBytes = d.MinBytes
	}
	if c.Backoff <= 0 {
		c.Backoff = d.Backoff
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.BrokerEpoch == nil {
		c.BrokerEpoch = func() int64 { return -1 }
	}
	if c.Address == nil {
		c.Address = func(int32) (string, bool) { return "", false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// topicPartition names a followed partition.
type topicPartition struct {
	topic     string
	partition int32
}

// partState is one followed partition. r, tp, id and f are fixed; the rest
// is guarded by f.mu.
type partState struct {
	r  Replica
	tp topicPartition
	id [16]byte
	f  *fetcher

	delayUntil time.Time // backing off until then
	failed     bool      // dropped after a failed append or truncation
	gen        uint64    // bumped by each Follow of the same replica
}

// Manager assigns follower partitions to per-leader fetchers.
type Manager struct {
	cfg Config
	wg  sync.WaitGroup // fetcher goroutines, retired ones included

	// opMu serialises Follow, Unfollow and Close, and is held while they
	// wait for a fetcher to finish applying, so membership changes of one
	// partition never interleave.
	opMu sync.Mutex

	mu struct {
		sync.Mutex
		closed   bool
		fetchers map[int32]*fetcher
		parts    map[topicPartition]*partState
	}
}

// NewManager returns a Manager; fetchers start with the first Follow.
func NewManager(cfg Config) *Manager {
	m := &Manager{cfg: cfg.withDefaults()}
	m.mu.fetchers = map[int32]*fetcher{}
	m.mu.parts = map[topicPartition]*partState{}
	return m
}

// Follow starts fetching r from leader, or moves it there from the broker
// it was fetched from. Following the same replica from the same leader
// again (a new leader epoch) ends its backoff and, if a failed append had
// dropped it, fetches it again.
func (m *Manager) Follow(leader int32, r Replica) {
	tp := topicPartition{r.TopicName(), r.PartitionIndex()}
	m.opMu.Lock()
	defer m.opMu.Unlock()

	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return
	}
	old := m.mu.parts[tp]
	if old != nil && old.f.source == leader && old.r == r {
		f := old.f
		f.mu.Lock()
		old.gen++
		old.delayUntil = time.Time{}
		if old.failed {
			old.failed = false
			f.mu.parts[tp] = old
		}
		f.mu.Unlock()
		m.mu.Unlock()
		f.wakeup()
		return
	}
	if old != nil {
		// Moving, or a new incarnation of the partition: stop the old
		// fetch and let an apply in progress finish before the new one
		// can start.
		m.removeLocked(old, old.f.source != leader)
		m.mu.Unlock()
		old.f.waitApply()
		m.mu.Lock()
		if m.mu.closed {
			m.mu.Unlock()
			return
		}
	}
	f := m.mu.fetchers[leader]
	if f == nil {
		f = newFetcher(m, leader)
		m.mu.fetchers[leader] = f
		m.wg.Add(1)
		go f.run()
	}
	ps := &partState{r: r, tp: tp, id: r.TopicUUID(), f: f}
	m.mu.parts[tp] = ps
	f.members++
	f.mu.Lock()
	f.mu.parts[tp] = ps
	f.mu.Unlock()
	m.mu.Unlock()
	f.wakeup()
	m.cfg.Logger.Debug("fetching partition from leader", "topic", tp.topic, "partition", tp.partition, "leader", leader)
}

// Unfollow stops fetching r. It returns only once no fetch response for r
// is being applied, so the caller may then make r the leader or close it.
// Unfollowing a replica that is not followed (or an older incarnation of a
// partition now followed as another Replica) does nothing.
func (m *Manager) Unfollow(r Replica) {
	tp := topicPartition{r.TopicName(), r.PartitionIndex()}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	ps := m.mu.parts[tp]
	if ps == nil || ps.r != r {
		m.mu.Unlock()
		return
	}
	m.removeLocked(ps, true)
	m.mu.Unlock()
	ps.f.waitApply()
}

// removeLocked takes ps off its fetcher; with retire, a fetcher left with
// no partitions is stopped (Kafka's idle fetcher shutdown).
func (m *Manager) removeLocked(ps *partState, retire bool) {
	f := ps.f
	f.mu.Lock()
	if f.mu.parts[ps.tp] == ps {
		delete(f.mu.parts, ps.tp)
	}
	f.mu.Unlock()
	if m.mu.parts[ps.tp] == ps {
		delete(m.mu.parts, ps.tp)
		f.members--
	}
	if retire && f.members == 0 && m.mu.fetchers[f.source] == f {
		delete(m.mu.fetchers, f.source)
		f.stop()
	}
}

// Close stops every fetcher and waits for their goroutines; later Follow
// calls do nothing.
func (m *Manager) Close() {
	m.opMu.Lock()
	m.mu.Lock()
	m.mu.closed = true
	for id, f := range m.mu.fetchers {
		f.stop()
		delete(m.mu.fetchers, id)
	}
	clear(m.mu.parts)
	m.mu.Unlock()
	m.opMu.Unlock()
	m.wg.Wait()
}

// waitApply returns once an apply in progress, if any, has finished.
func (f *fetcher) waitApply() {
	f.applyMu.Lock()
	//lint:ignore SA2001 an empty critical section is the point: wait for the holder.
	f.applyMu.Unlock()
}

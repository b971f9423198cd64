// Package replica owns the partitions this broker hosts: each Partition wraps
// one storage.Log with the state a leader keeps beside it — the leader
// epoch, the high watermark — and wakes fetchers waiting for new data. The
// producer state (idempotence, transactions, the last stable offset) lives
// in the log, which checks and appends under one lock and keeps it durable.
//
// Lock order: Partition.mu (appends) → storage.Log's own locks.
// Partition.waitMu is a leaf. No etcd or network call is made while a
// partition lock is held.
package replica

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
	"github.com/kbroker/kbroker/storage"
)

// Config is what a partition needs of its topic's configuration.
type Config struct {
	Log               storage.LogConfig
	MaxBatchBytes     int  // max.message.bytes
	LogAppendTime     bool // message.timestamp.type=LogAppendTime
	MinInsyncReplicas int  // min.insync.replicas
	// TimestampBeforeMaxMs and TimestampAfterMaxMs are
	// message.timestamp.before.max.ms and message.timestamp.after.max.ms:
	// how far a client's CreateTime timestamp may trail or lead the
	// broker's clock. math.MaxInt64 is no bound; zero allows no skew.
	TimestampBeforeMaxMs int64
	TimestampAfterMaxMs  int64
}

// Partition is one hosted partition. Appends are serialised by mu; reads go
// straight to the log, which is safe for concurrent readers.
type Partition struct {
	Topic   string
	Index   int32
	TopicID [16]byte
	Dir     string

	cfg       atomic.Pointer[Config]
	configRev atomic.Int64
	stateRev  atomic.Int64 // metadata revision of the applied partition state
	log       *storage.Log
	epochs    *storage.LeaderEpochCache
	logger    *slog.Logger

	mu struct {
		sync.Mutex
		leaderEpoch int32
		closed      bool

		// Replication (see replication.go).
		isLeader    bool
		self        int32
		leaderID    int32
		replicas    []int32
		isr         []int32
		isrModRev   int64
		minISR      int
		pendingAdds []int32
		followers   map[int32]*followerState
		hwWaiters   []*hwWaiter

		// verifying holds the transaction verifications in flight, by
		// producer ID (see verification.go).
		verifying map[int64]*VerificationGuard
	}
	highWatermark atomic.Int64

	waitMu  sync.Mutex
	waiters []chan<- struct{}
}

// Open opens (recovering if needed) the log of one partition in dir.
// opts are the log's (storage.Options): its Logger is the broker's, to
// which the partition adds topic and partition; OnFailure hears of the
// log's failure.
func Open(dir, topic string, index int32, topicID [16]byte, cfg Config, cleanShutdown bool, opts storage.Options) (*Partition, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	logger := opts.Logger.With("topic", topic, "partition", index)
	opts.Logger = logger
	l, err := storage.Open(dir, cfg.Log, cleanShutdown, opts)
	if err != nil {
		return nil, fmt.Errorf("open partition %s-%d: %w", topic, index, err)
	}
	if err := storage.WritePartitionMetadata(dir, topicID); err != nil {
		l.Close()
		return nil, fmt.Errorf("write partition.metadata for %s-%d: %w", topic, index, err)
	}
	p := &Partition{Topic: topic, Index: index, TopicID: topicID, Dir: dir, log: l, epochs: l.LeaderEpochs(), logger: logger}
	p.cfg.Store(&cfg)
	p.mu.leaderEpoch = -1
	p.mu.leaderID = -1
	p.mu.minISR = 1
	// Until the replicas report, the high watermark is what is known to be
	// committed: the log start offset, or the checkpointed value the broker
	// passes to RestoreHighWatermark.
	p.highWatermark.Store(l.LogStartOffset())
	return p, nil
}

// RestoreHighWatermark starts the high watermark at a value checkpointed
// before a restart (Kafka's replication-offset-checkpoint), kept within the
// recovered log. Everything below it was committed, so it stays valid
// whatever role the partition takes.
func (p *Partition) RestoreHighWatermark(hw int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hw = min(max(hw, p.log.LogStartOffset()), p.log.LogEndOffset())
	if hw > p.highWatermark.Load() {
		p.advanceHighWatermark(hw)
	}
}

// ConfigRevision is the metadata revision of the topic configuration the
// partition runs with (see SetConfigAt).
func (p *Partition) ConfigRevision() int64 { return p.configRev.Load() }

// SetConfigAt applies a topic configuration read at metadata revision rev.
func (p *Partition) SetConfigAt(cfg Config, rev int64) {
	p.SetConfig(cfg)
	p.configRev.Store(rev)
}

// SetConfig swaps the partition's configuration (topic config changes).
func (p *Partition) SetConfig(cfg Config) {
	if old := p.cfg.Load(); old != nil && *old == cfg {
		return
	}
	p.cfg.Store(&cfg)
	p.log.SetConfig(cfg.Log)
}

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.leaderEpoch
}

// HighWatermark is the offset below which records are committed; with a
// single replica it follows the log end offset.
func (p *Partition) HighWatermark() int64 { return p.highWatermark.Load() }

// LastStableOffset is the offset below which every transaction is decided
// and replicated: read_committed fetches stop here. It is the first
// unstable offset of the log, or the high watermark when that is lower or
// no transaction is open.
func (p *Partition) LastStableOffset() int64 {
	_, lso := p.FetchBounds()
	return lso
}

// FetchBounds reads the high watermark and the last stable offset as one
// consistent pair. A read_committed fetch must bound its data, its aborted
// transactions and its answer by this one last stable offset: read twice,
// the second can pass transactions the first did not list, and their
// aborted records reach the consumer as committed.
//
// The high watermark is loaded first. An append publishes a transaction's
// first unstable offset before the high watermark passes it, and a marker's
// transaction leaves the unstable set only after the high watermark passes
// the marker, so the pair never overstates what is stable.
func (p *Partition) FetchBounds() (highWatermark, lastStable int64) {
	hw := p.highWatermark.Load()
	if fuo := p.log.FirstUnstableOffset(); fuo >= 0 && fuo < hw {
		return hw, fuo
	}
	return hw, hw
}

// advanceHighWatermark publishes a new high watermark: the log learns
// which transaction markers are replicated, and retention and compaction
// are bounded by the new last stable offset.
func (p *Partition) advanceHighWatermark(hw int64) {
	p.highWatermark.Store(hw)
	p.log.OnHighWatermarkUpdated(hw)
	p.log.SetStableOffset(p.LastStableOffset())
}

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is the next offset to be assigned.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// AppendResult is what Produce reports for one partition.
type AppendResult struct {
	BaseOffset     int64
	LastOffset     int64 // of the appended (or duplicate) batch
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
}

// AppendAsLeader validates records (one Produce partition's record set),
// assigns offsets and appends them. Nothing is written unless every batch is
// valid. A duplicate idempotent batch returns its original offset and writes
// nothing. Errors are this package's, storage's or protocol/batch's sentinels;
// records refused by the topic's record rules (batch.RecordRules: keys on a
// compacted topic, timestamp bounds) give a *batch.RecordErrors, with the
// log start offset in the result as Kafka reports it.
func (p *Partition) AppendAsLeader(records []byte) (AppendResult, error) {
	return p.appendLeader(records, true, nil)
}

// AppendVerified is AppendAsLeader for a transactional batch whose
// partition the transaction coordinator confirmed under guard (from
// StartVerification). If the producer has no transaction open here, the
// guard must still be current — no marker was written since the check —
// or the append fails with INVALID_TXN_STATE rather than open a
// transaction the coordinator does not know (a hanging transaction).
func (p *Partition) AppendVerified(records []byte, guard *VerificationGuard) (AppendResult, error) {
	return p.appendLeader(records, true, guard)
}

// AppendAsCoordinator appends a batch written by a coordinator on this
// broker (group or transaction state). Such batches may carry a producer ID
// with sequence -1 (transactional offset commits): the log then checks the
// producer's epoch but not its sequence.
func (p *Partition) AppendAsCoordinator(records []byte) (AppendResult, error) {
	return p.appendLeader(records, false, nil)
}

func (p *Partition) appendLeader(records []byte, fromClient bool, guard *VerificationGuard) (AppendResult, error) {
	cfg := p.cfg.Load()
	res := AppendResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
	headers, err := batch.Validate(records, cfg.MaxBatchBytes)
	switch {
	case err != nil:
		return res, fmt.Errorf("produce to %s-%d: %w", p.Topic, p.Index, err)
	case len(headers) != 1:
		// Produce v3+ carries exactly one batch per partition (Kafka's
		// ProduceRequest.validateRecords).
		return res, fmt.Errorf("%w: %d batches in one partition's records", batch.ErrInvalidRecord, len(headers))
	case headers[0].IsControl():
		return res, fmt.Errorf("%w: control batch from a client", batch.ErrInvalidRecord) // only coordinators write them
	case fromClient && headers[0].ProducerID >= 0 && headers[0].BaseSequence < 0:
		// Kafka's LogValidator: a client batch with a producer ID has sequences.
		return res, fmt.Errorf("%w: producer ID %d without a sequence", batch.ErrInvalidRecord, headers[0].ProducerID)
	}

	now := time.Now().UnixMilli()
	if fromClient {
		// Kafka's LogValidator checks a client's records (keys on a
		// compacted topic, timestamps) before anything is written; the
		// coordinators' own records always carry both.
		rules := batch.RecordRules{
			Topic: p.Topic, Partition: p.Index,
			RequireKeys:          cfg.Log.Compact,
			LogAppendTime:        cfg.LogAppendTime,
			Now:                  now,
			TimestampBeforeMaxMs: cfg.TimestampBeforeMaxMs,
			TimestampAfterMaxMs:  cfg.TimestampAfterMaxMs,
		}
		if err := rules.Check(records, headers[0]); err != nil {
			// Kafka answers a refused record with the log start offset.
			res.LogStartOffset = p.log.LogStartOffset()
			return res, fmt.Errorf("produce to %s-%d: %w", p.Topic, p.Index, err)
		}
	}

	appendTime := int64(-1)
	if cfg.LogAppendTime {
		appendTime = now
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return res, ErrClosed
	}
	if !p.mu.isLeader {
		return res, ErrNotLeader
	}
	if h := headers[0]; guard != nil && h.IsTransactional() &&
		p.mu.verifying[h.ProducerID] != guard && !p.log.HasOngoingTransaction(h.ProducerID) {
		return res, fmt.Errorf("%w: producer %d's transaction ended since it was verified", storage.ErrInvalidTxnState, h.ProducerID)
	}
	info, err := p.log.AppendAsLeader(records, p.mu.leaderEpoch, appendTime)
	if err != nil {
		return res, p.appendError(err)
	}
	res.BaseOffset = info.FirstOffset
	res.LogStartOffset = p.log.LogStartOffset()
	if cfg.LogAppendTime {
		res.LogAppendTime = appendTime
		if info.Duplicate {
			res.LogAppendTime = info.Timestamp
		}
	}
	if !info.Duplicate {
		p.maybeAdvanceHighWatermarkLocked()
		p.wakeWaiters() // followers long-polling for new data
	}
	res.LastOffset = info.LastOffset
	return res, nil
}

// AppendControl writes a transaction marker (COMMIT when commit, else
// ABORT) for the producer at epoch, from a coordinator at
// coordinatorEpoch, and returns its offset. Errors are storage's sentinels
// (ErrInvalidProducerEpoch, ErrCoordinatorFenced), ErrNotLeader or
// ErrClosed.
func (p *Partition) AppendControl(producerID int64, epoch int16, commit bool, coordinatorEpoch int32) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return -1, ErrClosed
	}
	if !p.mu.isLeader {
		return -1, ErrNotLeader
	}
	off, err := p.log.AppendControl(producerID, epoch, commit, coordinatorEpoch, p.mu.leaderEpoch, time.Now().UnixMilli())
	if err != nil {
		return -1, p.appendError(err)
	}
	// The transaction ended: a verification made for it must not let a
	// late batch open the next one.
	delete(p.mu.verifying, producerID)
	p.maybeAdvanceHighWatermarkLocked()
	p.wakeWaiters()
	return off, nil
}

// appendError adds the partition to a log error; storage's sentinels stay
// visible to errors.Is.
func (p *Partition) appendError(err error) error {
	return fmt.Errorf("append to %s-%d: %w", p.Topic, p.Index, err)
}

// AbortedTransactions lists the aborted transactions overlapping
// [start, upper), for a read_committed fetch.
func (p *Partition) AbortedTransactions(start, upper int64) ([]storage.AbortedTxn, error) {
	return p.log.AbortedTransactions(start, upper)
}

// ActiveProducers lists the producers the partition's log knows, for
// DescribeProducers.
func (p *Partition) ActiveProducers() []storage.ProducerInfo { return p.log.ActiveProducers() }

// RemoveExpiredProducers forgets producers idle for producer.id.expiration.ms
// (the broker calls it periodically).
func (p *Partition) RemoveExpiredProducers(now time.Time) int {
	return p.log.RemoveExpiredProducers(now)
}

// Read returns whole batches from offset up to end, which a consumer's
// fetch takes from FetchBounds: the high watermark, or the last stable
// offset under read_committed. An end above the high watermark is lowered
// to it.
func (p *Partition) Read(offset int64, maxBytes int, end int64) (storage.ReadResult, error) {
	return p.log.Read(offset, maxBytes, min(end, p.highWatermark.Load()))
}

// FetchableEnd is where a consumer's reads stop: the last stable offset
// under read_committed, the high watermark otherwise.
func (p *Partition) FetchableEnd(readCommitted bool) int64 {
	if readCommitted {
		return p.LastStableOffset()
	}
	return p.highWatermark.Load()
}

// OffsetForTimestamp finds the first record at or after ts below the
// fetchable end (see FetchableEnd).
func (p *Partition) OffsetForTimestamp(ts int64, readCommitted bool) (offset, timestamp int64, ok bool, err error) {
	offset, timestamp, ok, err = p.log.OffsetForTimestamp(ts)
	if ok && offset >= p.FetchableEnd(readCommitted) {
		return -1, -1, false, nil
	}
	return offset, timestamp, ok, err
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp.
func (p *Partition) MaxTimestamp() (offset, timestamp int64) { return p.log.MaxTimestamp() }

// EpochEntries lists the leader-epoch checkpoint entries.
func (p *Partition) EpochEntries() []storage.EpochEntry { return p.epochs.Entries() }

// Notify registers ch to be signalled (non-blocking) at the next append.
func (p *Partition) Notify(ch chan<- struct{}) {
	p.waitMu.Lock()
	p.waiters = append(p.waiters, ch)
	p.waitMu.Unlock()
}

func (p *Partition) wakeWaiters() {
	p.waitMu.Lock()
	ws := p.waiters
	p.waiters = nil
	p.waitMu.Unlock()
	for _, ch := range ws {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// FlushIfDue fsyncs the log when its flush.ms interval has passed.
func (p *Partition) FlushIfDue() error { return p.log.FlushIfDue() }

// ApplyRetention deletes segments past retention.ms / retention.bytes.
func (p *Partition) ApplyRetention(now time.Time) (int, error) { return p.log.ApplyRetention(now) }

// Compact cleans the log when its topic is compacted and dirty enough.
func (p *Partition) Compact(now time.Time) (storage.CleanStats, error) { return p.log.Compact(now) }

// Flush forces the log to disk.
func (p *Partition) Flush() error { return p.log.Flush() }

// Close flushes and closes the log; later appends fail with ErrClosed.
func (p *Partition) Close() error {
	p.mu.Lock()
	p.mu.closed = true
	p.failWaitersLocked(ErrNotLeader)
	p.mu.Unlock()
	p.wakeWaiters()
	return p.log.Close()
}

// Delete closes the partition and removes its data.
func (p *Partition) Delete() error {
	p.mu.Lock()
	p.mu.closed = true
	p.failWaitersLocked(ErrNotLeader)
	p.mu.Unlock()
	p.wakeWaiters()
	return p.log.Delete()
}

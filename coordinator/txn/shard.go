package txn

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Log is the shard's __transaction_state partition, implemented by the
// broker (the contract of runtime.Log, as for group.Log). A failed Append
// fails the request: wrap a *kerr.Error to choose the code it answers,
// mapped as Kafka maps storage errors.
type Log interface {
	runtime.Log
}

// ProducerIDAllocator hands out cluster-unique producer IDs (the broker's
// etcd-backed block allocator). Next may block on I/O; the shard never calls
// it on its loop. A *kerr.Error in the chain picks the code the request
// answers; anything else answers COORDINATOR_LOAD_IN_PROGRESS (Kafka's
// answer while its producer ID manager has no block at hand).
type ProducerIDAllocator interface {
	Next(ctx context.Context) (int64, error)
}

// Marker is one transaction marker to write: a control batch ending the
// producer's transaction on one partition.
type Marker struct {
	Topic            string
	Partition        int32
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
}

// MarkerWriter writes transaction markers to the partition leaders (the
// broker's WriteTxnMarkers path, local or remote).
//
// WriteMarkers returns nil once every marker is durable (acks=all) or
// obsolete: its partition no longer exists, or the partition already knows
// a newer epoch of the producer (Kafka's INVALID_PRODUCER_EPOCH answer,
// which its coordinator also treats as done). Any other error makes the
// shard retry all markers of the transaction after MarkerRetryBackoff
// (markers are idempotent for the partition: a second marker for a
// transaction that is no longer open changes nothing), until success or
// Close, which cancels ctx. An error wrapping
// kerr.TransactionCoordinatorFenced stops the attempts: a newer
// coordinator owns the transaction, as in Kafka.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, markers []Marker) error
}

// Shard coordinates the transactional IDs of one __transaction_state
// partition. All its state is owned by one goroutine, its runtime.Loop; see
// the package doc.
type Shard struct {
	partition        int32
	coordinatorEpoch int32
	ids              ProducerIDAllocator
	markers          MarkerWriter
	cfg              Config
	logger           *slog.Logger
	loop             *runtime.Loop
	hanging          atomic.Int64 // OngoingOverTimeout, refreshed by each timeout check

	// Owned by the loop goroutine.
	txns        map[string]*txnMeta // durable: written only by replay
	live        map[string]*liveTxn // ephemeral, per transactional ID
	abortTimer  *time.Timer
	expiryTimer *time.Timer
}

// liveTxn is the in-memory, never-persisted state of one transactional ID,
// owned by the loop. It is lost on failover, as Kafka's pending state is.
type liveTxn struct {
	// pending: a write (or a producer ID allocation) for this ID is in
	// flight; other changes answer CONCURRENT_TRANSACTIONS (Kafka's
	// pendingState).
	pending bool
	// completing: markers and the completion record of a Prepare* state are
	// in progress (Kafka sets the pending Complete* state then).
	completing bool
	// lastEpoch is Kafka's lastProducerEpoch: the epoch before the latest
	// bump made for this producer, so a retried InitProducerId (KIP-360)
	// or EndTxn gets its answer again instead of PRODUCER_FENCED. Like
	// Kafka, it is not written to the log.
	lastEpoch int16
	// waiters are broker-path add-partitions requests waiting for the
	// transaction to settle (ConcurrentTransactionsWait).
	waiters []*waiter
}

type waiter struct {
	fired bool
	retry func()
	timer *time.Timer
}

// NewShard starts the shard of __transaction_state partition `partition`,
// whose leader epoch is coordinatorEpoch (carried by every marker so that
// partitions can fence a deposed coordinator). Until Load completes,
// requests answer COORDINATOR_LOAD_IN_PROGRESS.
func NewShard(partition int32, coordinatorEpoch int32, log Log, ids ProducerIDAllocator, markers MarkerWriter, cfg Config, logger *slog.Logger) *Shard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Shard{
		partition:        partition,
		coordinatorEpoch: coordinatorEpoch,
		ids:              ids,
		markers:          markers,
		cfg:              cfg.withDefaults(),
		logger:           logger,
		txns:             map[string]*txnMeta{},
		live:             map[string]*liveTxn{},
	}
	s.loop = runtime.Start(runtime.Config{
		Topic:     "__transaction_state",
		Partition: partition,
		Log:       log,
		Replay:    s.replay,
		Stop:      s.stopTimers,
		Now:       s.cfg.Now,
		Logger:    logger,
		Errors:    runtime.Errors{Closed: ErrClosed, AlreadyLoaded: ErrAlreadyLoaded, CorruptLog: ErrCorruptLog},
	})
	return s
}

func (s *Shard) stopTimers() {
	if s.abortTimer != nil {
		s.abortTimer.Stop()
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
	}
	for _, l := range s.live {
		for _, w := range l.waiters {
			if w.timer != nil {
				w.timer.Stop()
			}
		}
	}
}

// Close stops the shard (its broker no longer leads the partition).
// Waiting and later requests answer NOT_COORDINATOR. It cancels and waits
// for in-flight appends, allocations and marker writes; transactions left
// in PrepareCommit/PrepareAbort are completed by the next leader's Load.
func (s *Shard) Close() { s.loop.Close() }

// Loaded reports whether Load has completed (ListTransactions callers check
// it to answer COORDINATOR_LOAD_IN_PROGRESS).
func (s *Shard) Loaded() bool { return s.loop.Loaded() }

// OngoingOverTimeout is the number of transactions that, at the latest
// timeout check, had been open (Ongoing, PrepareCommit or PrepareAbort)
// longer than their timeout: the "hanging transactions" gauge. Ongoing ones
// are being aborted; a count that stays up means markers cannot be written.
func (s *Shard) OngoingOverTimeout() int { return int(s.hanging.Load()) }

func (s *Shard) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// liveFor returns (creating) the ephemeral state of id.
func (s *Shard) liveFor(id string) *liveTxn {
	l := s.live[id]
	if l == nil {
		l = &liveTxn{lastEpoch: noProducerEpoch}
		s.live[id] = l
	}
	return l
}

// busy reports a change of id in flight: Kafka's pendingTransitionInProgress.
func (s *Shard) busy(id string) bool {
	l := s.live[id]
	return l != nil && (l.pending || l.completing)
}

// forget drops the ephemeral state of an ID that has none worth keeping.
func (s *Shard) forget(id string) {
	l := s.live[id]
	if l != nil && !l.pending && !l.completing && len(l.waiters) == 0 && s.txns[id] == nil {
		delete(s.live, id)
	}
}

// write appends recs as one batch and, once the log committed them,
// replays them and calls then(0) on the loop; on failure then gets the
// Kafka error code and nothing is replayed. The IDs are marked pending
// meanwhile and their waiters are woken afterwards. Appends are chained, so
// batches reach the log (and are replayed) in submission order.
func (s *Shard) write(ids []string, recs []runtime.Record, then func(code int16)) {
	for _, id := range ids {
		s.liveFor(id).pending = true
	}
	s.loop.Append(recs, runtime.NoProducer, func(err error) {
		for _, id := range ids {
			s.liveFor(id).pending = false
		}
		code := errNone
		if err != nil {
			code = appendErrorCode(err)
		}
		then(code)
		for _, id := range ids {
			s.wake(id)
			s.forget(id)
		}
	})
}

// writeMeta writes the new state m of one transactional ID.
func (s *Shard) writeMeta(id string, m *txnMeta, then func(code int16)) {
	s.write([]string{id}, []runtime.Record{metaRecord(id, m)}, then)
}

// allocate asks the allocator for a producer ID off the loop, with id
// marked pending meanwhile, and calls then on the loop.
func (s *Shard) allocate(id string, then func(pid int64, code int16)) {
	l := s.liveFor(id)
	l.pending = true
	s.loop.Go(func(ctx context.Context) {
		pid, err := s.ids.Next(ctx)
		s.loop.Post(func() {
			l.pending = false
			if err != nil {
				s.logger.Warn("allocating a producer ID failed", "partition", s.partition, "transactional_id", id, "err", err)
				then(noProducerID, allocErrorCode(err))
				s.wake(id)
				s.forget(id)
				return
			}
			then(pid, errNone)
		})
	})
}

// Load replays the partition from its log start offset to its high
// watermark, then starts serving: transactions found in PrepareCommit or
// PrepareAbort get their markers (re)sent and are completed. Requests that
// arrive meanwhile answer COORDINATOR_LOAD_IN_PROGRESS.
func (s *Shard) Load(ctx context.Context) error {
	st, err := s.loop.Load(ctx, s.finishLoad)
	if err != nil {
		return err
	}
	s.logger.Info("loaded transaction coordinator state", "partition", s.partition, "leader_epoch", s.coordinatorEpoch,
		"from_offset", st.FromOffset, "to_offset", st.ToOffset, "records", st.Records)
	return nil
}

// finishLoad starts serving: unfinished commits and aborts are completed
// (Kafka's loadTransactionsForTxnTopicPartition hands them to the marker
// channel) and the periodic checks start.
func (s *Shard) finishLoad() {
	ids := make([]string, 0, len(s.txns))
	for id, m := range s.txns {
		if m.preparing() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.logger.Info("completing transaction found unfinished at load", "partition", s.partition, "transactional_id", id,
			"state", s.txns[id].state.String())
		s.startCompletion(id)
	}
	s.scheduleAbortCheck()
	s.scheduleExpiry()
}

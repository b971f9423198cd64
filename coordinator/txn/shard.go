package txn

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Log is the shard's __transaction_state partition, implemented by the
// broker (the same contract as group.Log).
type Log interface {
	// Append writes one record batch built by the coordinator (its base
	// offset field is assigned by the log) and returns once the batch is
	// committed (the high watermark passed it), or an error (then nothing
	// may be assumed written; wrap a *kerr.Error to choose the code the
	// request answers, mapped as Kafka maps storage errors).
	Append(ctx context.Context, batch []byte) (baseOffset int64, err error)
	// Read returns whole record batches (concatenated, as stored) from the
	// batch containing offset, up to the high watermark, at most ~maxBytes
	// (at least one batch). Empty when offset >= HW.
	Read(offset int64, maxBytes int) ([]byte, error)
	LogStartOffset() int64
}

// ProducerIDAllocator hands out cluster-unique producer IDs (the broker's
// etcd-backed block allocator). Next may block on I/O; the shard never calls
// it on its loop. A *kerr.Error in the chain picks the code the request
// answers; anything else answers COORDINATOR_NOT_AVAILABLE.
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

// loadReadBytes is how much Load asks the log for at a time.
const loadReadBytes = 1 << 20

// Shard coordinates the transactional IDs of one __transaction_state
// partition. All its state is owned by one goroutine (run); see the package
// doc.
type Shard struct {
	partition        int32
	coordinatorEpoch int32
	log              Log
	ids              ProducerIDAllocator
	markers          MarkerWriter
	cfg              Config
	logger           *slog.Logger

	ops      chan func()
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when run returns
	stopOnce sync.Once
	ctx      context.Context // cancelled by Close; bounds appends, allocations, markers
	cancel   context.CancelFunc
	bg       sync.WaitGroup // appends, allocations, marker writers
	loaded   atomic.Bool
	loading  atomic.Bool
	hanging  atomic.Int64 // OngoingOverTimeout, refreshed by each timeout check

	// Owned by the loop goroutine.
	txns        map[string]*txnMeta // durable: written only by replay
	live        map[string]*liveTxn // ephemeral, per transactional ID
	lastWrite   chan struct{}       // closed when the latest submitted append finished
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shard{
		partition:        partition,
		coordinatorEpoch: coordinatorEpoch,
		log:              log,
		ids:              ids,
		markers:          markers,
		cfg:              cfg.withDefaults(),
		logger:           logger,
		ops:              make(chan func(), 256),
		quit:             make(chan struct{}),
		done:             make(chan struct{}),
		ctx:              ctx,
		cancel:           cancel,
		txns:             map[string]*txnMeta{},
		live:             map[string]*liveTxn{},
	}
	go s.run()
	return s
}

// run is the loop: it owns every transaction and runs submitted closures
// one at a time.
func (s *Shard) run() {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			s.stopTimers()
			return
		case op := <-s.ops:
			op()
		}
	}
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
func (s *Shard) Close() {
	s.stopOnce.Do(func() {
		s.cancel()
		close(s.quit)
	})
	<-s.done
	s.bg.Wait()
}

// Loaded reports whether Load has completed (ListTransactions callers check
// it to answer COORDINATOR_LOAD_IN_PROGRESS).
func (s *Shard) Loaded() bool { return s.loaded.Load() }

// OngoingOverTimeout is the number of transactions that, at the latest
// timeout check, had been open (Ongoing, PrepareCommit or PrepareAbort)
// longer than their timeout: the "hanging transactions" gauge. Ongoing ones
// are being aborted; a count that stays up means markers cannot be written.
func (s *Shard) OngoingOverTimeout() int { return int(s.hanging.Load()) }

// post hands fn to the loop; it is dropped once the shard stopped.
func (s *Shard) post(fn func()) {
	select {
	case s.ops <- fn:
	case <-s.done:
	}
}

// after runs fn on the loop once d has passed.
func (s *Shard) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() { s.post(fn) })
}

func (s *Shard) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// call runs fn on the loop and waits for the value it hands to reply (fn
// may keep reply and call it later, once a write is committed). If the
// shard stops first the caller gets fail(NOT_COORDINATOR); if ctx ends
// first, fail(COORDINATOR_NOT_AVAILABLE); the work itself goes on.
func call[T any](ctx context.Context, s *Shard, fail func(code int16) T, fn func(reply func(T))) T {
	ch := make(chan T, 1)
	op := func() {
		var once sync.Once
		fn(func(v T) { once.Do(func() { ch <- v }) })
	}
	select {
	case s.ops <- op:
	case <-s.done:
		return fail(errNotCoordinator)
	case <-ctx.Done():
		return fail(errCoordinatorNotAvailable)
	}
	select {
	case v := <-ch:
		return v
	case <-s.done:
		select {
		case v := <-ch:
			return v
		default:
			return fail(errNotCoordinator)
		}
	case <-ctx.Done():
		return fail(errCoordinatorNotAvailable)
	}
}

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
// meanwhile and their waiters are woken afterwards. Appends run on their
// own goroutine, chained so batches reach the log (and are replayed) in
// submission order.
func (s *Shard) write(ids []string, recs []record, then func(code int16)) {
	for _, id := range ids {
		s.liveFor(id).pending = true
	}
	b := buildBatch(recs, s.nowMs())
	prev := s.lastWrite
	cur := make(chan struct{})
	s.lastWrite = cur
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer close(cur)
		if prev != nil {
			select {
			case <-prev:
			case <-s.ctx.Done():
			}
		}
		err := s.ctx.Err()
		if err != nil {
			err = ErrClosed
		} else if _, err = s.log.Append(s.ctx, b); err != nil && s.ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		s.post(func() {
			for _, id := range ids {
				s.liveFor(id).pending = false
			}
			if err != nil {
				s.logger.Warn("writing to __transaction_state failed", "partition", s.partition, "records", len(recs), "err", err)
				then(appendErrorCode(err))
			} else {
				for _, r := range recs {
					s.replay(r.key, r.value)
				}
				then(errNone)
			}
			for _, id := range ids {
				s.wake(id)
				s.forget(id)
			}
		})
	}()
}

// writeMeta writes the new state m of one transactional ID.
func (s *Shard) writeMeta(id string, m *txnMeta, then func(code int16)) {
	s.write([]string{id}, []record{metaRecord(id, m)}, then)
}

// allocate asks the allocator for a producer ID off the loop, with id
// marked pending meanwhile, and calls then on the loop.
func (s *Shard) allocate(id string, then func(pid int64, code int16)) {
	l := s.liveFor(id)
	l.pending = true
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		pid, err := s.ids.Next(s.ctx)
		s.post(func() {
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
	}()
}

// Load replays the partition from its log start offset to its high
// watermark, then starts serving: transactions found in PrepareCommit or
// PrepareAbort get their markers (re)sent and are completed. Requests that
// arrive meanwhile answer COORDINATOR_LOAD_IN_PROGRESS.
func (s *Shard) Load(ctx context.Context) error {
	if !s.loading.CompareAndSwap(false, true) {
		return ErrAlreadyLoaded
	}
	off := s.log.LogStartOffset()
	start := off
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("load __transaction_state-%d: %w", s.partition, err)
		}
		b, err := s.log.Read(off, loadReadBytes)
		if err != nil {
			return fmt.Errorf("load __transaction_state-%d at offset %d: %w", s.partition, off, err)
		}
		if len(b) == 0 {
			break
		}
		recs, next, err := decodeBatches(b, off)
		if err != nil {
			return fmt.Errorf("load __transaction_state-%d at offset %d: %w", s.partition, off, err)
		}
		if next <= off {
			return fmt.Errorf("load __transaction_state-%d: %w: read at offset %d made no progress", s.partition, ErrCorruptLog, off)
		}
		if err := s.onLoop(ctx, func() {
			for _, r := range recs {
				s.replay(r.key, r.value)
			}
		}); err != nil {
			return fmt.Errorf("load __transaction_state-%d: %w", s.partition, err)
		}
		n += len(recs)
		off = next
	}
	if err := s.onLoop(ctx, s.finishLoad); err != nil {
		return fmt.Errorf("load __transaction_state-%d: %w", s.partition, err)
	}
	s.logger.Info("loaded transaction coordinator state", "partition", s.partition, "leader_epoch", s.coordinatorEpoch,
		"from_offset", start, "to_offset", off, "records", n)
	return nil
}

// onLoop runs fn on the loop and waits for it.
func (s *Shard) onLoop(ctx context.Context, fn func()) error {
	err := call(ctx, s, func(code int16) error {
		if code == errNotCoordinator {
			return ErrClosed
		}
		return ctx.Err()
	}, func(reply func(error)) {
		fn()
		reply(nil)
	})
	if err == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
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
	s.loaded.Store(true)
	s.scheduleAbortCheck()
	s.scheduleExpiry()
}

// ready is the error every request answers before the shard serves.
func (s *Shard) ready() int16 {
	if !s.loaded.Load() {
		return errLoadInProgress
	}
	return errNone
}

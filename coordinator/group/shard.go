package group

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Log is the shard's __consumer_offsets partition, implemented by the
// broker.
type Log interface {
	// Append writes one record batch built by the coordinator (its base
	// offset field is assigned by the log) and returns once the batch is
	// committed (the high watermark passed it), or an error (then nothing
	// may be assumed written; the op fails with a retriable error such as
	// NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, mapped as Kafka maps
	// storage errors: wrap a *kerr.Error to choose). baseOffset is the
	// offset given to the batch's first record: replay remembers each
	// offset's record position, which decides between a transactional
	// and a plain commit of one partition. Transactional batches
	// (TxnOffsetCommit) carry the client's producer ID and epoch and base
	// sequence 0: the log checks the epoch (fencing a zombie producer) but,
	// as for Kafka's coordinator appends, not the sequence.
	Append(ctx context.Context, batch []byte) (baseOffset int64, err error)
	// Read returns whole record batches (concatenated, as stored) from the
	// batch containing offset, up to the high watermark, at most ~maxBytes
	// (at least one batch). Empty when offset >= HW.
	Read(offset int64, maxBytes int) ([]byte, error)
	LogStartOffset() int64
}

// loadReadBytes is how much Load asks the log for at a time.
const loadReadBytes = 1 << 20

// Shard coordinates the groups of one __consumer_offsets partition. All its
// group state is owned by one goroutine (run); see the package doc.
type Shard struct {
	partition int32
	log       Log
	cfg       Config
	logger    *slog.Logger

	ops      chan func()
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when run returns
	stopOnce sync.Once
	ctx      context.Context // cancelled by Close; bounds appends
	cancel   context.CancelFunc
	writes   sync.WaitGroup
	loaded   atomic.Bool
	loading  atomic.Bool

	// Owned by the loop goroutine.
	groups         map[string]*group
	lastWrite      chan struct{} // closed when the latest submitted append finished
	retentionTimer *time.Timer
	busy           map[string][]func() // consumer groups with a write in flight -> waiting ops
	regexCache     map[string]*regexp.Regexp
	txn            txnState // pending transactional offsets (txn.go)
}

// NewShard starts the shard of __consumer_offsets partition `partition`.
// Until Load completes, requests answer COORDINATOR_LOAD_IN_PROGRESS.
func NewShard(partition int32, log Log, cfg Config, logger *slog.Logger) *Shard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shard{
		partition:  partition,
		log:        log,
		cfg:        cfg.withDefaults(),
		logger:     logger,
		ops:        make(chan func(), 256),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		groups:     map[string]*group{},
		busy:       map[string][]func(){},
		regexCache: map[string]*regexp.Regexp{},
		txn:        newTxnState(),
	}
	go s.run()
	return s
}

// run is the loop: it owns every group and runs submitted closures one at a
// time.
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
	if s.retentionTimer != nil {
		s.retentionTimer.Stop()
	}
	for _, g := range s.groups {
		s.stopGroupTimers(g)
		for _, m := range g.members {
			stopMemberTimer(m)
		}
		for _, t := range g.pending {
			t.Stop()
		}
		stopConsumerTimers(g.cg)
	}
}

func (s *Shard) stopGroupTimers(g *group) {
	g.joinToken++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
	g.syncToken++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}

// Close stops the shard (its broker no longer leads the partition). Waiting
// and later requests answer NOT_COORDINATOR. It waits for in-flight appends,
// whose context it cancels.
func (s *Shard) Close() {
	s.stopOnce.Do(func() {
		s.cancel()
		close(s.quit)
	})
	<-s.done
	s.writes.Wait()
}

// Loaded reports whether Load has completed; until then every request
// answers COORDINATOR_LOAD_IN_PROGRESS (ListGroups callers check it to set
// the response error).
func (s *Shard) Loaded() bool { return s.loaded.Load() }

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
// may keep reply and call it later, e.g. when a rebalance completes). If
// the shard stops first the caller gets fail(NOT_COORDINATOR); if ctx ends
// first, fail(COORDINATOR_NOT_AVAILABLE) — the caller's connection is
// usually gone by then, and the member stays in the group as in Kafka.
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

// write appends recs as one batch and, once the log committed them,
// replays them and calls then(0) on the loop; on failure then gets the
// Kafka error code and nothing is replayed. Appends run on their own
// goroutine, chained so batches reach the log (and are replayed) in
// submission order while the loop keeps serving heartbeats.
func (s *Shard) write(recs []record, forOffsets bool, then func(code int16)) {
	s.writeAs(recs, noProducer, forOffsets, then)
}

func (s *Shard) writeAs(recs []record, p producer, forOffsets bool, then func(code int16)) {
	b := buildBatch(recs, s.nowMs(), p)
	prev := s.lastWrite
	cur := make(chan struct{})
	s.lastWrite = cur
	s.writes.Add(1)
	go func() {
		defer s.writes.Done()
		defer close(cur)
		if prev != nil {
			select {
			case <-prev:
			case <-s.ctx.Done():
			}
		}
		err := s.ctx.Err()
		var base int64
		if err != nil {
			err = ErrClosed
		} else if base, err = s.log.Append(s.ctx, b); err != nil && s.ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		s.post(func() {
			if err != nil {
				code := appendErrorCode(err, forOffsets)
				s.logger.Warn("writing to __consumer_offsets failed", "partition", s.partition, "records", len(recs), "err", err)
				then(code)
				return
			}
			pid := int64(-1)
			if p.transactional {
				pid = p.id
			}
			for i, r := range recs {
				s.replay(base+int64(i), pid, r.key, r.value)
			}
			then(0)
		})
	}()
}

// Load replays the partition from its log start offset to its high
// watermark, then starts serving. Requests that arrive meanwhile answer
// COORDINATOR_LOAD_IN_PROGRESS.
func (s *Shard) Load(ctx context.Context) error {
	if !s.loading.CompareAndSwap(false, true) {
		return ErrAlreadyLoaded
	}
	off := s.log.LogStartOffset()
	start := off
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("load __consumer_offsets-%d: %w", s.partition, err)
		}
		b, err := s.log.Read(off, loadReadBytes)
		if err != nil {
			return fmt.Errorf("load __consumer_offsets-%d at offset %d: %w", s.partition, off, err)
		}
		if len(b) == 0 {
			break
		}
		recs, next, err := decodeBatches(b, off)
		if err != nil {
			return fmt.Errorf("load __consumer_offsets-%d at offset %d: %w", s.partition, off, err)
		}
		if next <= off {
			return fmt.Errorf("load __consumer_offsets-%d: %w: read at offset %d made no progress", s.partition, ErrCorruptLog, off)
		}
		if err := s.onLoop(ctx, func() {
			for _, r := range recs {
				s.replayDecoded(r)
			}
		}); err != nil {
			return fmt.Errorf("load __consumer_offsets-%d: %w", s.partition, err)
		}
		n += len(recs)
		off = next
	}
	if err := s.onLoop(ctx, s.finishLoad); err != nil {
		return fmt.Errorf("load __consumer_offsets-%d: %w", s.partition, err)
	}
	s.logger.Info("loaded group coordinator state", "partition", s.partition, "from_offset", start, "to_offset", off, "records", n)
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

// finishLoad starts serving: loaded members get a session deadline (as
// Kafka schedules heartbeats for loaded groups), and the retention check
// starts.
func (s *Shard) finishLoad() {
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := s.groups[id]
		for _, mid := range g.order {
			s.scheduleHeartbeat(g, g.members[mid])
		}
		s.startConsumerSessions(g)
	}
	s.loaded.Store(true)
	s.scheduleRetention()
}

// ready is the error every request answers before the shard serves.
func (s *Shard) ready() int16 {
	if !s.loaded.Load() {
		return errLoadInProgress
	}
	return 0
}

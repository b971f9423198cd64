package runtime

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Log is a coordinator's partition of its internal topic, implemented by
// the broker.
type Log interface {
	// Append writes one record batch built by BuildBatch (its base offset
	// field is assigned by the log) and returns once the batch is committed
	// (the high watermark passed it), or an error (then nothing may be
	// assumed written). baseOffset is the offset given to the batch's first
	// record.
	Append(ctx context.Context, batch []byte) (baseOffset int64, err error)
	// Read returns whole record batches (concatenated, as stored) from the
	// batch containing offset, up to the high watermark, at most ~maxBytes
	// (at least one batch). Empty when offset >= HW.
	Read(offset int64, maxBytes int) ([]byte, error)
	LogStartOffset() int64
}

// Config is what a Loop needs from its coordinator.
type Config struct {
	// Topic and Partition name the partition, in errors and logs.
	Topic     string
	Partition int32
	Log       Log
	// Replay applies one entry of the log to the coordinator's state, on
	// the loop: every entry at load, and every appended record once the
	// log committed it. It is the only writer of durable state.
	Replay func(Entry)
	// Stop runs on the loop after Close, as its last closure: the
	// coordinator stops its timers there.
	Stop func()
	// Now stamps appended batches.
	Now    func() time.Time
	Logger *slog.Logger
	// Errors are the coordinator package's sentinels, which the Loop's
	// errors wrap.
	Errors Errors
}

// Errors are a coordinator package's sentinel errors. The Loop wraps them,
// rather than sentinels of its own, so that each package keeps its
// documented errors (group.ErrClosed, txn.ErrClosed, ...) for errors.Is.
type Errors struct {
	// Closed reports a shard that was closed.
	Closed error
	// AlreadyLoaded reports a second Load.
	AlreadyLoaded error
	// CorruptLog reports bytes that do not parse as record batches, or a
	// read that makes no progress.
	CorruptLog error
}

// Loop is the goroutine that owns one coordinator shard's state, with the
// plumbing around it; see the package doc.
type Loop struct {
	cfg Config

	ops      chan func()
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when run returns
	stopOnce sync.Once
	ctx      context.Context // cancelled by Close; bounds appends and Go's work
	cancel   context.CancelFunc
	bg       sync.WaitGroup // appends and Go's goroutines
	loaded   atomic.Bool
	loading  atomic.Bool

	// Owned by the loop goroutine.
	lastWrite chan struct{} // closed when the latest submitted append finished
}

// Start starts the loop of one shard. Until Load completes, Ready answers
// COORDINATOR_LOAD_IN_PROGRESS.
func Start(cfg Config) *Loop {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		cfg:    cfg,
		ops:    make(chan func(), 256),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	go l.run()
	return l
}

// run runs submitted closures one at a time until Close.
func (l *Loop) run() {
	defer close(l.done)
	for {
		select {
		case <-l.quit:
			if l.cfg.Stop != nil {
				l.cfg.Stop()
			}
			return
		case op := <-l.ops:
			op()
		}
	}
}

// Close stops the loop: waiting and later requests answer NOT_COORDINATOR.
// It cancels the context of in-flight appends and background work and
// waits for them.
func (l *Loop) Close() {
	l.stopOnce.Do(func() {
		l.cancel()
		close(l.quit)
	})
	<-l.done
	l.bg.Wait()
}

// Closed reports whether Close was called; work that retries stops then.
func (l *Loop) Closed() bool { return l.ctx.Err() != nil }

// Loaded reports whether Load has completed.
func (l *Loop) Loaded() bool { return l.loaded.Load() }

// Ready is the error code every request answers before the shard serves:
// COORDINATOR_LOAD_IN_PROGRESS until Load completed, then 0.
func (l *Loop) Ready() int16 {
	if !l.loaded.Load() {
		return kerr.CoordinatorLoadInProgress.Code
	}
	return 0
}

// Post hands fn to the loop; it is dropped once the loop stopped.
func (l *Loop) Post(fn func()) {
	select {
	case l.ops <- fn:
	case <-l.done:
	}
}

// After runs fn on the loop once d has passed.
func (l *Loop) After(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() { l.Post(fn) })
}

// Go runs fn on its own goroutine with a context that Close cancels, and
// Close waits for it; fn hands its result back with Post. Call it on the
// loop.
func (l *Loop) Go(fn func(ctx context.Context)) {
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		fn(l.ctx)
	}()
}

// Call runs fn on the loop and waits for the value it hands to reply (fn
// may keep reply and call it later, e.g. once a write is committed; only
// the first value counts). If the loop stops first the caller gets
// fail(NOT_COORDINATOR); if ctx ends first, fail(COORDINATOR_NOT_AVAILABLE)
// (the caller's connection is usually gone by then) and the work itself
// goes on.
func Call[T any](ctx context.Context, l *Loop, fail func(code int16) T, fn func(reply func(T))) T {
	ch := make(chan T, 1)
	op := func() {
		var once sync.Once
		fn(func(v T) { once.Do(func() { ch <- v }) })
	}
	select {
	case l.ops <- op:
	case <-l.done:
		return fail(kerr.NotCoordinator.Code)
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	select {
	case v := <-ch:
		return v
	case <-l.done:
		select {
		case v := <-ch:
			return v
		default:
			return fail(kerr.NotCoordinator.Code)
		}
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
}

// Do runs fn on the loop and waits for it. It fails with Errors.Closed if
// the loop stopped first, or with ctx's error.
func (l *Loop) Do(ctx context.Context, fn func()) error {
	err := Call(ctx, l, func(code int16) error {
		if code == kerr.NotCoordinator.Code {
			return l.cfg.Errors.Closed
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

// Package runtimetest holds what the tests of the coordinator packages
// share: an in-memory Log that keeps real batch bytes, and helpers to poll
// and to name error codes.
package runtimetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/protocol/batch"
)

// Log is an in-memory runtime.Log: appended batches are validated and kept
// as bytes (base offsets rewritten) and Read returns them, so loading
// replays real record bytes. The zero value is an empty log.
type Log struct {
	mu      sync.Mutex
	batches [][]byte
	next    int64
	fail    atomic.Pointer[error] // when set, Append fails with it
	// Guarded by mu: the next readFails Reads fail with readErr.
	readFails int
	readErr   error
}

// Append stores b at the log end and returns its base offset.
func (l *Log) Append(ctx context.Context, b []byte) (int64, error) {
	if e := l.fail.Load(); e != nil {
		return -1, *e
	}
	if _, err := batch.Validate(b, 1<<20); err != nil {
		return -1, fmt.Errorf("runtimetest log: %w", err)
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return -1, fmt.Errorf("runtimetest log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := append([]byte(nil), b...)
	batch.SetBaseOffset(c, l.next)
	base := l.next
	l.next += int64(h.LastOffsetDelta) + 1
	l.batches = append(l.batches, c)
	return base, nil
}

// Read returns the batches from the one containing offset, at least one and
// then up to maxBytes.
func (l *Log) Read(offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readFails > 0 {
		l.readFails--
		return nil, l.readErr
	}
	return l.readLocked(offset, maxBytes), nil
}

func (l *Log) readLocked(offset int64, maxBytes int) []byte {
	var out []byte
	for _, b := range l.batches {
		h, _ := batch.ParseHeader(b)
		if h.LastOffset() < offset {
			continue
		}
		if len(out) > 0 && len(out)+len(b) > maxBytes {
			break
		}
		out = append(out, b...)
	}
	return out
}

// Batches returns the appended batches, in log order.
func (l *Log) Batches() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.batches...)
}

// LogStartOffset is 0: the log is never truncated.
func (l *Log) LogStartOffset() int64 { return 0 }

// SetFail makes every Append fail with err until SetFail(nil).
func (l *Log) SetFail(err error) {
	if err == nil {
		l.fail.Store(nil)
		return
	}
	l.fail.Store(&err)
}

// FailReads makes the next n Reads fail with err.
func (l *Log) FailReads(n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readFails, l.readErr = n, err
}

// ReadFailsLeft is how many of the Reads FailReads asked for have not
// failed yet.
func (l *Log) ReadFailsLeft() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readFails
}

// Entries decodes every entry in the log.
func (l *Log) Entries(t testing.TB) []runtime.Entry {
	t.Helper()
	l.mu.Lock()
	b := l.readLocked(0, 1<<30)
	l.mu.Unlock()
	entries, _, err := runtime.Decode(b, 0)
	if err != nil {
		t.Fatalf("decode log: %v", err)
	}
	return entries
}

// GatedLog holds each append's return, after its bytes are in the log,
// until Open: a test puts something between an append and its replay.
type GatedLog struct {
	*Log
	gate chan struct{}
}

// NewGatedLog gates appends to l.
func NewGatedLog(l *Log) *GatedLog { return &GatedLog{Log: l, gate: make(chan struct{})} }

// Append appends b to the log and returns once the gate is open, or with
// ctx's error once ctx ends.
func (g *GatedLog) Append(ctx context.Context, b []byte) (int64, error) {
	off, err := g.Log.Append(ctx, b)
	select {
	case <-g.gate:
		return off, err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Open releases waiting and later appends.
func (g *GatedLog) Open() { close(g.gate) }

// Shard is what Load needs of a coordinator shard.
type Shard interface {
	Load(ctx context.Context) error
	Close()
}

// Load loads s, failing the test if that takes 5 seconds, and closes s
// when the test ends.
func Load(t testing.TB, s Shard) {
	t.Helper()
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
}

// Context bounds one request of a test: it ends after 10 seconds or with
// the test.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Logger discards, unless the environment variable env is set: then it logs
// at Debug to stderr.
func Logger(env string) *slog.Logger {
	if os.Getenv(env) != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// WaitFor polls cond until it holds, failing the test after 10 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Recv receives from ch, failing the test after 10 seconds.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// ErrName names a Kafka error code, NONE for 0.
func ErrName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

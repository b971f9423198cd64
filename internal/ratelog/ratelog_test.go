package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// record is one captured line.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

// capture is a slog.Handler that keeps every record at or above its level.
type capture struct {
	level slog.Level
	mu    *sync.Mutex
	recs  *[]record
}

func newCapture(level slog.Level) (*slog.Logger, func() []record) {
	c := capture{level: level, mu: &sync.Mutex{}, recs: &[]record{}}
	return slog.New(c), func() []record {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := *c.recs
		*c.recs = nil
		return out
	}
}

func (c capture) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }
func (c capture) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c capture) WithGroup(string) slog.Handler                { return c }
func (c capture) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		if _, dup := rec.attrs[a.Key]; dup {
			panic(fmt.Sprintf("attribute %q twice", a.Key))
		}
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	c.mu.Lock()
	*c.recs = append(*c.recs, rec)
	c.mu.Unlock()
	return nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newLimited(t *testing.T, level slog.Level) (*Logger, *fakeClock, func() []record) {
	t.Helper()
	logger, take := newCapture(level)
	l := New(logger, time.Minute)
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l.now = c.now
	return l, c, take
}

func TestFirstThenOncePerIntervalWithCount(t *testing.T) {
	l, clock, take := newLimited(t, slog.LevelInfo)

	l.Warn("leader-2", "cannot reach leader", "leader", 2, "err", "refused")
	got := take()
	if len(got) != 1 || got[0].level != slog.LevelWarn || got[0].msg != "cannot reach leader" {
		t.Fatalf("first occurrence: %+v", got)
	}
	if _, ok := got[0].attrs["suppressed"]; ok {
		t.Fatalf("first occurrence carries a count: %+v", got[0])
	}

	for range 5 {
		clock.advance(10 * time.Second)
		l.Warn("leader-2", "cannot reach leader", "leader", 2, "err", "refused")
	}
	if got := take(); len(got) != 0 {
		t.Fatalf("repeats within the interval were logged above Debug: %+v", got)
	}

	clock.advance(10 * time.Second) // a minute after the first line
	l.Warn("leader-2", "cannot reach leader", "leader", 2, "err", "timeout")
	got = take()
	if len(got) != 1 || got[0].level != slog.LevelWarn {
		t.Fatalf("after the interval: %+v", got)
	}
	if n, _ := got[0].attrs["suppressed"].(int64); n != 5 {
		t.Fatalf("suppressed = %v, want 5", got[0].attrs["suppressed"])
	}
	if got[0].attrs["err"] != "timeout" || got[0].attrs["leader"] != int64(2) {
		t.Fatalf("the line lost the caller's attributes: %+v", got[0].attrs)
	}

	// The count restarts with each line.
	clock.advance(time.Minute)
	l.Warn("leader-2", "cannot reach leader")
	if got := take(); len(got) != 1 || got[0].attrs["suppressed"] != nil {
		t.Fatalf("next window: %+v", got)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l, _, take := newLimited(t, slog.LevelInfo)
	l.Warn("a", "x")
	l.Warn("b", "x")
	l.Warn("a", "x")
	if got := take(); len(got) != 2 {
		t.Fatalf("want one line per key, got %+v", got)
	}
}

func TestSuppressedGoToDebug(t *testing.T) {
	l, _, take := newLimited(t, slog.LevelDebug)
	ctx := context.Background()
	l.Log(ctx, slog.LevelInfo, "k", "leadership moving")
	l.Log(ctx, slog.LevelInfo, "k", "leadership moving")
	got := take()
	if len(got) != 2 || got[0].level != slog.LevelInfo || got[1].level != slog.LevelDebug {
		t.Fatalf("got %+v", got)
	}
}

func TestCallerArgsNotModified(t *testing.T) {
	l, clock, take := newLimited(t, slog.LevelInfo)
	l.Warn("k", "m")
	l.Warn("k", "m")
	clock.advance(time.Minute)
	args := make([]any, 2, 8)
	args[0], args[1] = "err", "e"
	l.Warn("k", "m", args...)
	if got := take(); len(got) != 2 || got[1].attrs["suppressed"] != int64(1) {
		t.Fatalf("got %+v", got)
	}
	if extra := args[:4]; extra[2] != nil {
		t.Fatalf("Log wrote into the caller's slice: %v", extra)
	}
}

func TestStaleKeysArePruned(t *testing.T) {
	l, clock, _ := newLimited(t, slog.LevelInfo)
	for i := range 1000 {
		l.Warn(fmt.Sprint("partition-", i), "m")
		clock.advance(time.Second)
	}
	l.mu.Lock()
	n := len(l.mu.keys)
	l.mu.Unlock()
	if n > 2*minPruneAt+60 {
		t.Fatalf("%d keys kept; those unseen for a minute should go", n)
	}
	// A key seen within the interval is kept, so its limit holds.
	l.Warn("partition-999", "m")
	l.mu.Lock()
	k := l.mu.keys["partition-999"]
	l.mu.Unlock()
	if k == nil || k.suppressed != 1 {
		t.Fatalf("recent key lost: %+v", k)
	}
}

func TestConcurrentUse(t *testing.T) {
	logger, take := newCapture(slog.LevelInfo)
	l := New(logger, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Warn("k", "m")
			}
		}()
	}
	wg.Wait()
	if got := take(); len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
}

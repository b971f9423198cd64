package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

var errInjectedRead = errors.New("test: injected read error")

// logRecord is one line a logHandler captured.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

// logHandler captures log lines.
type logHandler struct {
	mu      sync.Mutex
	records []logRecord
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *logHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logHandler) WithGroup(string) slog.Handler            { return h }
func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	lr := logRecord{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, lr)
	return nil
}

// at returns the captured lines of level.
func (h *logHandler) at(level slog.Level) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.records {
		if r.level == level {
			out = append(out, r)
		}
	}
	return out
}

// loader runs RetryLoad as the broker does: every attempt after the first
// closes the failed shard and loads a new one.
type loader struct {
	log    runtime.Log
	mu     sync.Mutex
	shards []*shard // every shard started, the current one last
}

func (ld *loader) load(ctx context.Context, attempt int) error {
	s := newShard(ld.log)
	ld.mu.Lock()
	if n := len(ld.shards); n > 0 {
		ld.shards[n-1].loop.Close()
	}
	ld.shards = append(ld.shards, s)
	ld.mu.Unlock()
	_, err := s.loop.Load(ctx, func() {})
	return err
}

func (ld *loader) all() []*shard {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return append([]*shard(nil), ld.shards...)
}

func (ld *loader) closeAll() {
	for _, s := range ld.all() {
		s.loop.Close()
	}
}

type retryResult struct {
	attempts int
	err      error
}

func startRetryLoad(t *testing.T, ctx context.Context, ld *loader, cfg runtime.RetryLoadConfig) <-chan retryResult {
	t.Helper()
	done := make(chan retryResult, 1)
	go func() {
		n, err := runtime.RetryLoad(ctx, cfg, ld.load)
		done <- retryResult{n, err}
	}()
	t.Cleanup(ld.closeAll)
	return done
}

// TestRetryLoadRecoversFromReadErrors: a load whose log reads fail the
// first three times is retried, each time on a new shard, until one loads
// by itself and serves, having replayed the log exactly once; the failure
// is logged once at Warn and the recovery once at Info.
func TestRetryLoadRecoversFromReadErrors(t *testing.T) {
	l := &runtimetest.Log{}
	if _, err := l.Append(context.Background(), runtime.BuildBatch([]runtime.Record{rec("a", "1"), rec("b", "2")}, 1000, runtime.NoProducer)); err != nil {
		t.Fatal(err)
	}
	l.FailReads(3, errInjectedRead)
	logs := &logHandler{}
	ld := &loader{log: l}
	done := startRetryLoad(t, runtimetest.Context(t), ld, runtime.RetryLoadConfig{
		Topic: "__test", Partition: 3, Logger: slog.New(logs),
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
	})

	runtimetest.WaitFor(t, "a shard to load by itself", func() bool {
		shards := ld.all()
		return len(shards) > 0 && shards[len(shards)-1].loop.Ready() == 0
	})
	res := runtimetest.Recv(t, done, "RetryLoad to return")
	if res.err != nil || res.attempts != 4 {
		t.Fatalf("RetryLoad = %d attempts, %v; want 4, nil", res.attempts, res.err)
	}
	if left := l.ReadFailsLeft(); left != 0 {
		t.Fatalf("%d injected read failures left", left)
	}
	shards := ld.all()
	if len(shards) != 4 {
		t.Fatalf("%d shards started, want 4", len(shards))
	}
	for i, s := range shards[:3] {
		if s.loop.Loaded() || !s.loop.Closed() {
			t.Fatalf("failed shard %d: loaded %v, closed %v; want unloaded and closed", i, s.loop.Loaded(), s.loop.Closed())
		}
	}
	want := []runtime.Entry{
		{Offset: 0, ProducerID: -1, Record: rec("a", "1")},
		{Offset: 1, ProducerID: -1, Record: rec("b", "2")},
	}
	if got := shards[3].entries(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded shard replayed\n got %+v\nwant %+v", got, want)
	}
	// It serves: a write is appended and replayed.
	if err := runtimetest.Recv(t, shards[3].appendOnLoop(t, []runtime.Record{rec("c", "3")}, runtime.NoProducer), "append"); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}

	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 || warns[0].attrs["partition"] != int64(3) || !errors.Is(warns[0].attrs["err"].(error), errInjectedRead) {
		t.Fatalf("warnings %+v; want one, with the partition and the read error", warns)
	}
	var recovered []logRecord
	for _, r := range logs.at(slog.LevelInfo) {
		if r.attrs["attempts"] == int64(4) {
			recovered = append(recovered, r)
		}
	}
	if len(recovered) != 1 {
		t.Fatalf("info lines %+v; want one recovery line with attempts=4", logs.at(slog.LevelInfo))
	}
}

// TestRetryLoadStopsWhenContextEnds: a load that keeps failing is retried,
// with warnings after the first rate-limited, until its context ends; then
// RetryLoad returns the context's error and starts no further attempt.
func TestRetryLoadStopsWhenContextEnds(t *testing.T) {
	l := &runtimetest.Log{}
	l.FailReads(1<<30, errInjectedRead)
	logs := &logHandler{}
	ld := &loader{log: l}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startRetryLoad(t, ctx, ld, runtime.RetryLoadConfig{
		Topic: "__test", Partition: 3, Logger: slog.New(logs),
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, WarnEvery: time.Hour,
	})
	runtimetest.WaitFor(t, "five failed attempts", func() bool { return len(ld.all()) >= 5 })
	cancel()
	res := runtimetest.Recv(t, done, "RetryLoad to return")
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("RetryLoad error %v, want context.Canceled", res.err)
	}
	if n := len(ld.all()); n != res.attempts {
		t.Fatalf("%d shards started after %d attempts", n, res.attempts)
	}
	if warns := logs.at(slog.LevelWarn); len(warns) != 1 {
		t.Fatalf("%d warnings for %d failures within WarnEvery, want 1: %+v", len(warns), res.attempts, warns)
	}
}

// TestRetryLoadRateLimitsWarnings: after the first warning, a load that
// keeps failing warns at most once per WarnEvery, with the number of
// failures since the previous warning.
func TestRetryLoadRateLimitsWarnings(t *testing.T) {
	l := &runtimetest.Log{}
	l.FailReads(1<<30, errInjectedRead)
	logs := &logHandler{}
	ld := &loader{log: l}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every = 50 * time.Millisecond
	start := time.Now()
	done := startRetryLoad(t, ctx, ld, runtime.RetryLoadConfig{
		Topic: "__test", Partition: 3, Logger: slog.New(logs),
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, WarnEvery: every,
	})
	runtimetest.WaitFor(t, "two rate-limited warnings", func() bool { return len(logs.at(slog.LevelWarn)) >= 3 })
	cancel()
	res := runtimetest.Recv(t, done, "RetryLoad to return")
	elapsed := time.Since(start)

	warns := logs.at(slog.LevelWarn)
	if limit := int(elapsed/every) + 1; len(warns) > limit {
		t.Fatalf("%d warnings in %v, want at most %d", len(warns), elapsed, limit)
	}
	counted := 1 // the first warning's failure
	for i, w := range warns[1:] {
		n, _ := w.attrs["failures_since_last_warning"].(int64)
		if n < 2 {
			t.Fatalf("warning %d counts %d failures since the previous one; with 1ms pauses and one warning per %v, want several: %+v", i+1, n, every, w)
		}
		counted += int(n)
	}
	if counted > res.attempts {
		t.Fatalf("warnings count %d failures, but only %d attempts were made", counted, res.attempts)
	}
}

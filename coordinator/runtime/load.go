package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// loadReadBytes is how much Load asks the log for at a time.
const loadReadBytes = 1 << 20

// LoadStats describes a completed Load, for the coordinator's log line.
type LoadStats struct {
	FromOffset, ToOffset int64
	Records              int
}

// Load replays the partition from its log start offset to its high
// watermark through Config.Replay, on the loop, a read at a time (requests
// are served in between; they answer COORDINATOR_LOAD_IN_PROGRESS). Then,
// in one closure on the loop, it runs finish, with which the coordinator
// starts serving (timers, completions of what the log left unfinished), and
// marks the shard loaded.
//
// Load runs once per Loop. If it fails (the log cannot be read, ctx ended,
// the loop was closed) the shard stays unloaded, holding whatever was
// replayed before the failure, and a second Load is refused with
// Errors.AlreadyLoaded: the owner closes the shard and loads a new one,
// as RetryLoad's load function does.
func (l *Loop) Load(ctx context.Context, finish func()) (LoadStats, error) {
	if !l.loading.CompareAndSwap(false, true) {
		return LoadStats{}, l.cfg.Errors.AlreadyLoaded
	}
	name := fmt.Sprintf("%s-%d", l.cfg.Topic, l.cfg.Partition)
	off := l.cfg.Log.LogStartOffset()
	st := LoadStats{FromOffset: off}
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("load %s: %w", name, err)
		}
		b, err := l.cfg.Log.Read(off, loadReadBytes)
		if err != nil {
			return st, fmt.Errorf("load %s at offset %d: %w", name, off, err)
		}
		if len(b) == 0 {
			break
		}
		entries, next, err := Decode(b, off)
		if err != nil {
			return st, fmt.Errorf("load %s at offset %d: %w: %w", name, off, l.cfg.Errors.CorruptLog, err)
		}
		if next <= off {
			return st, fmt.Errorf("load %s: %w: read at offset %d made no progress", name, l.cfg.Errors.CorruptLog, off)
		}
		if err := l.Do(ctx, func() {
			for _, e := range entries {
				l.cfg.Replay(e)
			}
		}); err != nil {
			return st, fmt.Errorf("load %s: %w", name, err)
		}
		st.Records += len(entries)
		off = next
	}
	st.ToOffset = off
	if err := l.Do(ctx, func() {
		finish()
		l.loaded.Store(true)
	}); err != nil {
		return st, fmt.Errorf("load %s: %w", name, err)
	}
	return st, nil
}

// RetryLoadConfig is how RetryLoad retries a shard's failed load; zero
// fields take the defaults named.
type RetryLoadConfig struct {
	// Topic and Partition name the partition in log lines.
	Topic     string
	Partition int32
	Logger    *slog.Logger
	// MinBackoff is the pause after the first failure (100ms); it doubles
	// after each further failure up to MaxBackoff (10s). A random part of
	// up to half of each pause is taken off, so that the shards of a broker
	// that failed together do not retry in step.
	MinBackoff, MaxBackoff time.Duration
	// WarnEvery rate-limits the warnings after the first failure (1m).
	WarnEvery time.Duration
}

// RetryLoad calls load until it succeeds or ctx ends, pausing with backoff
// between attempts, and returns how many attempts it made; its error is
// nil once an attempt succeeded, else ctx's. load gets ctx and the
// attempt's number (from 1). A Loop's Load runs once (a failed one may
// have replayed part of the log, and a second one is refused with
// Errors.AlreadyLoaded), so every attempt after the first must load a new
// shard in place of the failed one, closing that.
//
// The first failure is logged at Warn with the error, later ones at most
// once per WarnEvery with how many failed since; a load that succeeds after
// a failure is logged at Info. Failures after ctx ended are not logged.
func RetryLoad(ctx context.Context, cfg RetryLoadConfig, load func(ctx context.Context, attempt int) error) (int, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	SetDefault(&cfg.MinBackoff, 100*time.Millisecond)
	SetDefault(&cfg.MaxBackoff, 10*time.Second)
	SetDefault(&cfg.WarnEvery, time.Minute)
	start := time.Now()
	var (
		lastWarn time.Time
		unwarned int // failures since the last warning
	)
	backoff := cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := load(ctx, attempt)
		if err == nil {
			if attempt > 1 {
				cfg.Logger.Info("loaded coordinator shard after failed attempts", "topic", cfg.Topic, "partition", cfg.Partition,
					"attempts", attempt, "took", time.Since(start).Round(time.Millisecond).String())
			}
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, ctx.Err()
		}
		pause := jitter(backoff)
		backoff = min(2*backoff, cfg.MaxBackoff)
		switch now := time.Now(); {
		case attempt == 1:
			cfg.Logger.Warn("loading coordinator shard failed; retrying", "topic", cfg.Topic, "partition", cfg.Partition,
				"retry_in", pause.Round(time.Millisecond).String(), "err", err)
			lastWarn = now
		case now.Sub(lastWarn) >= cfg.WarnEvery:
			cfg.Logger.Warn("loading coordinator shard still failing; retrying", "topic", cfg.Topic, "partition", cfg.Partition,
				"attempts", attempt, "failures_since_last_warning", unwarned+1, "retry_in", pause.Round(time.Millisecond).String(), "err", err)
			lastWarn, unwarned = now, 0
		default:
			unwarned++
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempt, ctx.Err()
		}
	}
}

// jitter takes a random part of up to half off d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d - rand.N(d/2)
}

// Package ratelog logs a warning that repeats without flooding the log.
//
// Some conditions persist and are met on every retry: a follower that
// cannot reach its leader fails every replica.fetch.backoff.ms, a
// coordinator that cannot create its internal topic yet fails every request.
// Logging each failure buries everything else; logging none hides the
// problem. A Logger logs the first occurrence of a condition (named by a
// key) at once, and then at most one line per interval, carrying in a
// "suppressed" attribute the number of occurrences not logged since the
// previous line. Suppressed occurrences still go to Debug, so a broker run
// with log.level=debug sees every one.
//
// A Logger is safe for concurrent use.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Interval is the usual spacing of one key's lines: a minute, so that a
// condition lasting an hour costs sixty lines.
const Interval = time.Minute

// Logger rate-limits lines per key. The zero value is not usable; call New.
type Logger struct {
	logger   *slog.Logger
	interval time.Duration
	now      func() time.Time // time.Now; replaced by tests

	mu struct {
		sync.Mutex
		keys map[string]*keyState
		// pruneAt is the number of keys at which stale ones are next
		// dropped, so keys of conditions that ended (a deleted partition's,
		// say) do not accumulate.
		pruneAt int
	}
}

// keyState is one key's window.
type keyState struct {
	logged     time.Time // when the last line at the caller's level went out
	seen       time.Time // the last occurrence
	suppressed int       // occurrences since logged that went to Debug only
}

const minPruneAt = 64

// New returns a Logger writing to logger that logs each key at most once
// per interval (Interval if interval <= 0).
func New(logger *slog.Logger, interval time.Duration) *Logger {
	if interval <= 0 {
		interval = Interval
	}
	l := &Logger{logger: logger, interval: interval, now: time.Now}
	l.mu.keys = map[string]*keyState{}
	l.mu.pruneAt = minPruneAt
	return l
}

// Log logs msg with args at level if key has not been logged at its level
// for an interval, adding suppressed=N when N earlier occurrences were
// held back; otherwise it logs at Debug only and counts the occurrence.
// The key names the condition (and whatever it is about: a topic, a
// partition), not the message: different errors of one condition share a
// key, so a flapping error cannot defeat the limit.
func (l *Logger) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	k := l.mu.keys[key]
	if k == nil {
		l.pruneLocked(now)
		k = &keyState{}
		l.mu.keys[key] = k
	}
	k.seen = now
	suppressed := 0
	if !k.logged.IsZero() && now.Sub(k.logged) < l.interval {
		k.suppressed++
		level = slog.LevelDebug
	} else {
		suppressed = k.suppressed
		k.logged, k.suppressed = now, 0
	}
	l.mu.Unlock()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	if suppressed > 0 {
		args = append(args[:len(args):len(args)], "suppressed", suppressed)
	}
	l.logger.Log(ctx, level, msg, args...)
}

// Warn is Log at Warn with a background context.
func (l *Logger) Warn(key, msg string, args ...any) {
	l.Log(context.Background(), slog.LevelWarn, key, msg, args...)
}

// pruneLocked forgets keys not seen for an interval once there are
// pruneAt of them; a forgotten key's next occurrence is logged as a first
// one. Amortised O(1) per new key.
func (l *Logger) pruneLocked(now time.Time) {
	if len(l.mu.keys) < l.mu.pruneAt {
		return
	}
	for key, k := range l.mu.keys {
		if now.Sub(k.seen) >= l.interval {
			delete(l.mu.keys, key)
		}
	}
	l.mu.pruneAt = max(minPruneAt, 2*len(l.mu.keys))
}

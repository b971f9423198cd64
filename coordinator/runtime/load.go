package runtime

import (
	"context"
	"fmt"
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

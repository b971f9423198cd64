package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// EpochEntry says that leader epoch Epoch wrote its first record at
// StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// LeaderEpochCache is the partition's leader-epoch-checkpoint: the start
// offset of every leader epoch that wrote to the log, in increasing epoch and
// offset order. Followers use it (through OffsetForLeaderEpoch) to find where
// their log diverges from a new leader's.
//
// A Log owns its cache: Append assigns the epochs stamped on the batches,
// TruncateTo and SetLogStartOffset trim it. Every change is written through
// to the checkpoint file before the call returns, as Kafka does; a change is
// rare (once per leader election), so the cost stays off the common path.
// Reads are safe from any goroutine.
type LeaderEpochCache struct {
	fsys FS
	path string

	// writeMu serialises changes so the file is written in change order;
	// it is taken before mu.
	writeMu sync.Mutex
	mu      sync.RWMutex
	entries []EpochEntry // guarded by mu
}

// LoadLeaderEpochCache reads dir/leader-epoch-checkpoint (a missing file is
// an empty cache). The file is Kafka's checkpoint text format:
//
//	0                     version
//	2                     number of entries
//	0 0                   "<epoch> <start offset>", one line per entry
//	3 1500
//
// A malformed file gives ErrCorruptFile: Kafka too refuses to load the log
// rather than guess.
func LoadLeaderEpochCache(fsys FS, dir string) (*LeaderEpochCache, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	c := &LeaderEpochCache{fsys: fsys, path: filepath.Join(dir, LeaderEpochCheckpointFile)}
	_ = removeIfExists(fsys, c.path+".tmp")
	data, err := readFile(fsys, c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load leader epoch cache: %w", err)
	}
	if c.entries, err = parseEpochCheckpoint(data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptFile, c.path, err)
	}
	return c, nil
}

func parseEpochCheckpoint(data []byte) ([]EpochEntry, error) {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("%d lines", len(lines))
	}
	if strings.TrimSpace(lines[0]) != "0" {
		return nil, fmt.Errorf("unsupported version %q", lines[0])
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("entry count %q for %d entry lines", lines[1], len(lines)-2)
	}
	out := make([]EpochEntry, 0, n)
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		if k := len(out); k > 0 && (int32(e) <= out[k-1].Epoch || o < out[k-1].StartOffset) {
			return nil, fmt.Errorf("entry %q out of order", line)
		}
		out = append(out, EpochEntry{Epoch: int32(e), StartOffset: o})
	}
	return out, nil
}

func formatEpochCheckpoint(entries []EpochEntry) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(entries))
	for _, e := range entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return []byte(b.String())
}

// Entries returns a copy of the cache.
func (c *LeaderEpochCache) Entries() []EpochEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]EpochEntry(nil), c.entries...)
}

// LatestEpoch returns the newest epoch, ok=false when the cache is empty.
func (c *LeaderEpochCache) LatestEpoch() (epoch int32, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.entries) == 0 {
		return -1, false
	}
	return c.entries[len(c.entries)-1].Epoch, true
}

// Assign records that epoch starts at startOffset. Like Kafka it is a no-op
// unless epoch differs from the latest entry or moves its start back, and it
// first drops trailing entries that would break monotonicity (an epoch >=
// epoch or a start offset >= startOffset). Negative epochs (batches written
// before leader epochs existed) are ignored.
func (c *LeaderEpochCache) Assign(epoch int32, startOffset int64) error {
	if epoch < 0 || startOffset < 0 {
		return nil
	}
	if !c.needsUpdate(epoch, startOffset) {
		return nil
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	if !c.needsUpdateLocked(epoch, startOffset) {
		c.mu.Unlock()
		return nil
	}
	k := len(c.entries)
	for k > 0 && (c.entries[k-1].Epoch >= epoch || c.entries[k-1].StartOffset >= startOffset) {
		k--
	}
	c.entries = append(c.entries[:k:k], EpochEntry{Epoch: epoch, StartOffset: startOffset})
	snapshot := append([]EpochEntry(nil), c.entries...)
	c.mu.Unlock()
	return c.write(snapshot)
}

func (c *LeaderEpochCache) needsUpdate(epoch int32, startOffset int64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.needsUpdateLocked(epoch, startOffset)
}

func (c *LeaderEpochCache) needsUpdateLocked(epoch int32, startOffset int64) bool {
	if len(c.entries) == 0 {
		return true
	}
	last := c.entries[len(c.entries)-1]
	return epoch != last.Epoch || startOffset < last.StartOffset
}

// EpochForOffset returns the epoch that wrote offset: the last entry whose
// start offset is <= offset. ok=false when offset precedes every entry.
func (c *LeaderEpochCache) EpochForOffset(offset int64) (epoch int32, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	epoch, ok = -1, false
	for _, e := range c.entries {
		if e.StartOffset > offset {
			break
		}
		epoch, ok = e.Epoch, true
	}
	return epoch, ok
}

// EndOffsetFor answers OffsetForLeaderEpoch the way Kafka's
// LeaderEpochFileCache.endOffsetFor does: for the latest epoch the log end
// offset; for an older epoch the largest known epoch <= it and the start
// offset of the first epoch above it; for an epoch below every entry that
// epoch and the first entry's start offset; (-1, -1) for epoch -1 or an
// epoch above every entry.
func (c *LeaderEpochCache) EndOffsetFor(epoch int32, logEndOffset int64) (int32, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if epoch < 0 || len(c.entries) == 0 {
		return -1, -1
	}
	if c.entries[len(c.entries)-1].Epoch == epoch {
		return epoch, logEndOffset
	}
	// First entry with a larger epoch.
	i := 0
	for i < len(c.entries) && c.entries[i].Epoch <= epoch {
		i++
	}
	if i == len(c.entries) {
		return -1, -1
	}
	if i == 0 {
		return epoch, c.entries[0].StartOffset
	}
	return c.entries[i-1].Epoch, c.entries[i].StartOffset
}

// TruncateFromEnd drops every entry starting at or after endOffset, for a
// log truncated to endOffset.
func (c *LeaderEpochCache) TruncateFromEnd(endOffset int64) error {
	if endOffset < 0 {
		return nil
	}
	return c.change(func(es []EpochEntry) ([]EpochEntry, bool) {
		k := len(es)
		for k > 0 && es[k-1].StartOffset >= endOffset {
			k--
		}
		return es[:k:k], k != len(es)
	})
}

// TruncateFromStart drops the entries wholly below startOffset, for a log
// whose start moved up: the last entry at or below it survives with its
// start offset raised to startOffset.
func (c *LeaderEpochCache) TruncateFromStart(startOffset int64) error {
	return c.change(func(es []EpochEntry) ([]EpochEntry, bool) {
		k := 0
		for k < len(es) && es[k].StartOffset <= startOffset {
			k++
		}
		if k == 0 {
			return es, false
		}
		if k == 1 && es[0].StartOffset == startOffset {
			return es, false
		}
		out := append([]EpochEntry{{Epoch: es[k-1].Epoch, StartOffset: startOffset}}, es[k:]...)
		return out, true
	})
}

// Clear empties the cache, for a log truncated fully.
func (c *LeaderEpochCache) Clear() error {
	return c.change(func(es []EpochEntry) ([]EpochEntry, bool) { return nil, len(es) > 0 })
}

// change applies f under the locks and writes the result when f reports a
// change.
func (c *LeaderEpochCache) change(f func([]EpochEntry) ([]EpochEntry, bool)) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	next, changed := f(c.entries)
	if !changed {
		c.mu.Unlock()
		return nil
	}
	c.entries = next
	snapshot := append([]EpochEntry(nil), next...)
	c.mu.Unlock()
	return c.write(snapshot)
}

func (c *LeaderEpochCache) write(entries []EpochEntry) error {
	if err := writeFileAtomic(c.fsys, c.path, formatEpochCheckpoint(entries)); err != nil {
		return fmt.Errorf("write leader epoch checkpoint: %w", err)
	}
	return nil
}

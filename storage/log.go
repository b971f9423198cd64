package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Log is one partition's log: a directory of segments, the newest of which
// (the active segment) takes appends.
//
// Ownership: one writer at a time calls the mutating methods (Append,
// TruncateTo, TruncateFullyAndStartAt, SetLogStartOffset, Flush, Close,
// Delete); the partition that owns the Log serialises them, and wmu enforces
// it. Read, OffsetForTimestamp, MaxTimestamp and the offset getters may run
// concurrently from any goroutine. ApplyRetention and Compact run on the
// broker's background goroutine, concurrently with all of these. See the
// package doc for the lock order.
type Log struct {
	dir    string
	cfg    LogConfig
	fs     FS
	logger *slog.Logger
	now    func() time.Time
	epochs *LeaderEpochCache
	// onFailure is Options.OnFailure.
	onFailure func(error)

	leo      atomic.Int64 // log end offset, stored under mu
	logStart atomic.Int64 // log start offset, stored under mu
	failed   atomic.Pointer[error]

	// wmu serialises the writer. The fields below it are the writer's own.
	wmu            sync.Mutex
	unflushed      int64     // offsets appended since the last fsync
	firstUnflushed time.Time // time of the oldest unflushed append
	// ps is the producer state, covering every batch below the log end.
	ps *producerState
	// snaps are the offsets of the producer state snapshots on disk.
	snaps []int64
	// firstUnstable publishes ps.firstUnstable() to readers.
	firstUnstable atomic.Int64

	// cleanMu serialises the background maintenance, ApplyRetention and
	// Compact, which the broker runs on one goroutine; taken before wmu.
	cleanMu sync.Mutex
	// ckptMu guards ckpt: the cleaner advances it, truncation lowers it.
	// Only the cleaner (under cleanMu) writes it to disk.
	ckptMu sync.Mutex
	ckpt   cleanerCheckpoint
	// truncGen counts truncations (bumped under mu): a cleaner pass that
	// saw another value abandons its output.
	truncGen atomic.Uint64
	// stableOffset bounds retention and compaction, see SetStableOffset.
	stableOffset atomic.Int64
	// pendMu guards pending: files renamed to .deleted awaiting removal.
	pendMu  sync.Mutex
	pending []pendingDelete
	// hookBeforeSwap, when set by a test, runs before a cleaned segment
	// replaces the old ones.
	hookBeforeSwap func()

	// mu guards the segment list and the published state of each segment
	// (size, end, max timestamp, in-memory index entries). The writer holds
	// it for writing only to publish; readers hold it for reading while they
	// look up positions.
	mu     sync.RWMutex
	segs   []*segment
	closed bool
}

// Open opens the partition log in dir, creating the directory and an empty
// first segment at offset 0 when there is none, and recovers it.
//
// With cleanShutdown false the active segment is re-read from its first
// batch: the first torn, CRC-bad or out-of-order batch and everything after
// it is cut off, with one warning naming the file and position, and its
// indexes are rebuilt. With cleanShutdown true the files are trusted, but
// every index is still sanity-checked. Either way, a missing, misshapen or
// inconsistent index of any segment is rebuilt from the log (a sealed
// segment with a bad index is recovered like the active one).
//
// The log start offset after Open is the one persisted in
// log-start-offset-checkpoint, or the first segment's base offset when that
// is higher or there is none. Segments wholly below it are deleted; a
// checkpoint above the recovered log end (the tail was lost in a crash)
// empties the log and restarts it at the checkpoint, as Kafka's LogLoader
// does. Leftovers of an interrupted compaction swap or segment deletion are
// completed or removed first (see the package doc).
func Open(dir string, cfg LogConfig, cleanShutdown bool, opts Options) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		// The caller's logger names the log (replica adds topic and
		// partition); adding them again would print each key twice.
		logger = slog.Default()
		if topic, p, ok := ParsePartitionDirName(filepath.Base(dir)); ok {
			logger = logger.With("topic", topic, "partition", p)
		} else {
			logger = logger.With("dir", dir)
		}
	}
	opts = opts.withDefaults()
	l := &Log{dir: dir, cfg: cfg, fs: opts.FS, logger: logger, now: opts.Now, onFailure: opts.OnFailure, ps: newProducerState()}
	l.firstUnstable.Store(-1)
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	epochs, err := LoadLeaderEpochCache(l.fs, dir)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.epochs = epochs
	l.stableOffset.Store(math.MaxInt64)
	if l.ckpt, err = readCleanerCheckpoint(l.fs, dir); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	err = l.load(cleanShutdown)
	if err == nil {
		err = l.restoreLogStart()
	}
	if err == nil {
		err = l.loadProducerState()
	}
	if err != nil {
		for _, s := range l.segs {
			_ = s.closeIndexes()
			_ = s.log.release()
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	return l, nil
}

// load finds the segments in l.dir and brings each to a usable state.
func (l *Log) load(cleanShutdown bool) error {
	if err := l.finishInterruptedSwaps(); err != nil {
		return err
	}
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	logs := map[int64]bool{}
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok && !e.IsDir() {
			bases = append(bases, base)
			logs[base] = true
		}
	}
	// An index without its log is left over from a deletion: drop it.
	for _, e := range entries {
		for _, suffix := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			if base, ok := parseSegmentName(e.Name(), suffix); ok && !logs[base] {
				if err := removeIfExists(l.fs, filepath.Join(l.dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	now := l.now()
	if len(bases) == 0 {
		s, err := createSegment(l.fs, l.dir, 0, l.cfg, now)
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("sync %s: %w", l.dir, err)
		}
		l.leo.Store(0)
		l.logStart.Store(0)
		return nil
	}
	latest, ok := l.epochs.LatestEpoch()
	if !ok {
		latest = -1
	}
	var found []EpochEntry
	for i, base := range bases {
		s, missing, err := openSegment(l.fs, l.dir, base, l.cfg, now)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
		last := i == len(bases)-1
		var bad error
		switch {
		case missing:
			bad = fmt.Errorf("%w: missing index file", errBadIndex)
		case last && !cleanShutdown:
			bad = errors.New("unclean shutdown")
		case last:
			bad = l.loadActive(s)
		default:
			bad = checkSealed(s, bases[i+1])
		}
		if bad == nil {
			if !last {
				s.end = bases[i+1]
				if s.maxTS, s.maxTSOff, err = s.tix.last(); err != nil {
					return err
				}
			}
			continue
		}
		if cleanShutdown || !last {
			l.logger.Warn("rebuilding indexes of log segment", "file", s.logPath, "err", bad)
		}
		res, err := l.recoverSegment(s, base, latest)
		if err != nil {
			return err
		}
		for _, e := range res.epochs {
			found = append(found, e)
			latest = e.Epoch
		}
		if !last {
			// A sealed segment ends its time index with its largest timestamp.
			s.tix.maybeAdd(s.maxTS, s.maxTSOff)
			if err := s.tix.persist(true); err != nil {
				return err
			}
			s.idx.mem, s.tix.mem = nil, nil
			s.end = bases[i+1]
		}
	}
	active := l.segs[len(l.segs)-1]
	l.leo.Store(active.end)
	l.logStart.Store(l.segs[0].base)
	for _, e := range found {
		if err := l.epochs.Assign(e.Epoch, e.StartOffset); err != nil {
			return err
		}
	}
	return l.epochs.TruncateFromEnd(active.end)
}

// LogStartOffset is the first offset a reader may ask for.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset is the offset the next appended record gets.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// LeaderEpochs is the log's leader epoch cache, for OffsetForLeaderEpoch
// and ListOffsets answers. Only the Log changes it.
func (l *Log) LeaderEpochs() *LeaderEpochCache { return l.epochs }

// Size is the number of bytes in all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// fail makes err the Log's sticky failure (the first one wins and is
// logged once) and returns the failure.
func (l *Log) fail(err error) error {
	wrapped := fmt.Errorf("%w: %w", ErrLogFailed, err)
	if l.failed.CompareAndSwap(nil, &wrapped) {
		l.logger.Error("log failed, refusing further writes", "err", err)
		if l.onFailure != nil {
			l.onFailure(wrapped)
		}
	}
	return *l.failed.Load()
}

// writableLocked reports why the writer may not change the log. The caller
// holds wmu.
func (l *Log) writableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Append writes one or more v2 batches whose BaseOffset fields the caller
// has set: the first must equal LogEndOffset and each next one must start
// right after the previous one's last offset. The batches are not otherwise
// validated (the produce path validated them). Before writing, Append rolls
// a new segment when the active one would pass SegmentBytes, is older than
// SegmentMs, has a full index, or could not index the offsets. The bytes go
// to the file in one write; fsync happens only when the flush policy asks.
// A failed write leaves the Log failed (ErrLogFailed) for good.
//
// Append is the follower's (and the tests') path: the producer state and
// transaction index follow the batches, but nothing is checked against
// them. The leader appends with AppendAsLeader.
func (l *Log) Append(batches []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	return l.appendLocked(batches)
}

// appendLocked is Append under wmu.
func (l *Log) appendLocked(batches []byte) error {
	if len(batches) == 0 {
		return nil
	}
	leo := l.leo.Load()
	next, maxTS := leo, int64(-1)
	for pos := 0; pos < len(batches); {
		h, err := batch.ParseHeader(batches[pos:])
		if err != nil {
			return fmt.Errorf("%w: batch at byte %d: %w", ErrInvalidAppend, pos, err)
		}
		size := h.TotalSize()
		switch {
		case size > len(batches)-pos:
			return fmt.Errorf("%w: batch at byte %d claims %d bytes, %d remain", ErrInvalidAppend, pos, size, len(batches)-pos)
		case h.LastOffsetDelta < 0:
			return fmt.Errorf("%w: batch at byte %d has last offset delta %d", ErrInvalidAppend, pos, h.LastOffsetDelta)
		case h.BaseOffset != next:
			return fmt.Errorf("%w: batch at byte %d has base offset %d, expected %d", ErrInvalidAppend, pos, h.BaseOffset, next)
		case int64(size) > l.cfg.SegmentBytes:
			return fmt.Errorf("%w: batch of %d bytes, segment.bytes %d", ErrRecordBatchTooLarge, size, l.cfg.SegmentBytes)
		}
		maxTS = max(maxTS, h.MaxTimestamp)
		next = h.NextOffset()
		pos += size
	}
	// Like Kafka, record a new leader epoch before the data it stamps.
	for pos := 0; pos < len(batches); {
		h, _ := batch.ParseHeader(batches[pos:])
		if err := l.epochs.Assign(h.PartitionLeaderEpoch, h.BaseOffset); err != nil {
			return l.fail(err)
		}
		pos += h.TotalSize()
	}
	s := l.active()
	if l.shouldRoll(s, len(batches), maxTS, next-1) {
		if err := l.roll(leo); err != nil {
			return err
		}
		s = l.active()
	}
	pos := s.size
	if pos+int64(len(batches)) > math.MaxInt32 {
		return fmt.Errorf("%w: %d bytes do not fit a segment", ErrRecordBatchTooLarge, len(batches))
	}
	if _, err := s.log.f.WriteAt(batches, pos); err != nil {
		return l.fail(fmt.Errorf("write %s at %d: %w", s.logPath, pos, err))
	}
	l.mu.Lock()
	if pos == 0 {
		s.rollTS = maxTS
	}
	for p := 0; p < len(batches); {
		h, _ := batch.ParseHeader(batches[p:])
		s.indexBatch(h, pos+int64(p), l.cfg.IndexIntervalBytes)
		p += h.TotalSize()
	}
	s.size = pos + int64(len(batches))
	s.end = next
	l.leo.Store(next)
	l.mu.Unlock()
	for p := 0; p < len(batches); {
		h, _ := batch.ParseHeader(batches[p:])
		if h.ProducerID >= 0 {
			if err := l.applyBatchLocked(s, h, batches[p:p+h.TotalSize()]); err != nil {
				return l.fail(err)
			}
		}
		p += h.TotalSize()
	}
	l.publishUnstableLocked()

	now := l.now()
	if l.unflushed == 0 {
		l.firstUnflushed = now
	}
	l.unflushed += next - leo
	if l.unflushed >= l.cfg.FlushIntervalMessages || now.Sub(l.firstUnflushed).Milliseconds() >= l.cfg.FlushIntervalMs {
		return l.flushLocked()
	}
	return nil
}

// shouldRoll is Kafka's LogSegment.shouldRoll for an append of n bytes
// whose largest timestamp is maxTS and last offset lastOffset. An empty
// segment never rolls.
func (l *Log) shouldRoll(s *segment, n int, maxTS, lastOffset int64) bool {
	switch {
	case s.size == 0:
		return false
	case s.size+int64(n) > l.cfg.SegmentBytes:
		return true
	case s.idx.full() || s.tix.full():
		return true
	case lastOffset-s.base > math.MaxInt32:
		return true
	case s.rollTS >= 0:
		return maxTS-s.rollTS > l.cfg.SegmentMs
	default:
		return l.now().Sub(s.created).Milliseconds() > l.cfg.SegmentMs
	}
}

// roll seals the active segment (final time index entry, everything
// fsynced) and starts a new one at newBase. The old segment is made durable
// before the new file exists, so after a crash only the newest segment can
// hold unsynced bytes and recovery need look at it alone.
func (l *Log) roll(newBase int64) error {
	old := l.active()
	l.mu.Lock()
	old.tix.maybeAdd(old.maxTS, old.maxTSOff)
	l.mu.Unlock()
	if err := errors.Join(old.log.f.Sync(), old.idx.persist(true), old.tix.persist(true), old.txn.sync()); err != nil {
		return l.fail(fmt.Errorf("seal %s: %w", old.logPath, err))
	}
	// The producer state at the new segment's base: after a crash, Open
	// replays only the newest segment on top of it.
	if err := l.takeSnapshotLocked(); err != nil {
		return l.fail(err)
	}
	s, err := createSegment(l.fs, l.dir, newBase, l.cfg, l.now())
	if err != nil {
		return l.fail(err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		_ = s.closeIndexes()
		_ = s.log.release()
		return l.fail(fmt.Errorf("sync %s: %w", l.dir, err))
	}
	l.mu.Lock()
	old.idx.mem, old.tix.mem = nil, nil
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	l.unflushed, l.firstUnflushed = 0, time.Time{}
	l.logger.Debug("rolled log segment", "offset", newBase)
	return nil
}

// Flush fsyncs the active segment's log file. Its index files are written
// at roll and Close only: after a crash recovery rebuilds them.
func (l *Log) Flush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.flushLocked()
}

// FlushIfDue fsyncs when the oldest unflushed append is FlushIntervalMs old.
// Append checks the same on every call; a broker calls FlushIfDue from one
// ticker for all logs so a log that stopped receiving appends is flushed too.
func (l *Log) FlushIfDue() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed || l.unflushed == 0 || l.now().Sub(l.firstUnflushed).Milliseconds() < l.cfg.FlushIntervalMs {
		return nil
	}
	return l.flushLocked()
}

func (l *Log) flushLocked() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	s := l.active()
	if err := s.log.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", s.logPath, err))
	}
	l.unflushed, l.firstUnflushed = 0, time.Time{}
	return nil
}

// SetConfig replaces the log's configuration (a topic config change); it
// applies from the next append or roll. The writer lock orders it with
// appends, which read the config.
func (l *Log) SetConfig(cfg LogConfig) {
	l.wmu.Lock()
	l.cfg = cfg
	l.wmu.Unlock()
}

package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// TruncateTo removes every batch holding an offset >= offset, for a follower
// whose log diverged from its leader's. As in Kafka, a batch that straddles
// offset goes entirely (the log end offset may end up below offset), later
// segments are deleted, the epoch cache loses the epochs starting at or
// after offset, and an offset below the first segment truncates the log
// fully (TruncateFullyAndStartAt). An offset at or past the log end is a
// no-op. Outstanding ReadResults over removed bytes become short; readers
// never see data above the high watermark, which truncation stays above.
func (l *Log) TruncateTo(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: truncate to %d", ErrOffsetOutOfRange, offset)
	}
	if offset >= l.leo.Load() {
		return nil
	}
	if offset < l.segs[0].base {
		return l.truncateFullyLocked(offset)
	}

	l.mu.Lock()
	i := l.floorSegment(offset)
	s := l.segs[i]
	doomed := append([]*segment(nil), l.segs[i+1:]...)
	pos, err := l.truncateSegmentLocked(s, offset)
	if err != nil {
		l.mu.Unlock()
		return l.fail(err)
	}
	l.segs = l.segs[: i+1 : i+1]
	l.leo.Store(s.end)
	lowered := l.logStart.Load() > s.end
	if lowered {
		l.logStart.Store(s.end)
	}
	l.truncGen.Add(1)
	l.mu.Unlock()
	l.lowerCleanerCheckpoint(s.end)
	if lowered {
		if err := l.persistLogStartLocked(s.end); err != nil {
			return l.fail(err)
		}
	}

	// Later segments go first: a crash midway then leaves at worst the tail
	// of s, which the next truncation removes again.
	if err := l.dropSegments(doomed); err != nil {
		return l.fail(err)
	}
	if err := errors.Join(s.log.f.Truncate(pos), s.log.f.Sync(), s.idx.persist(false), s.tix.persist(false)); err != nil {
		return l.fail(fmt.Errorf("truncate %s to %d: %w", s.logPath, pos, err))
	}
	l.unflushed, l.firstUnflushed = 0, time.Time{}
	if err := l.epochs.TruncateFromEnd(offset); err != nil {
		return l.fail(err)
	}
	// Kafka's truncateAndReload: snapshots above the new end go, the state
	// is rebuilt from the newest remaining one.
	if _, err := l.rebuildProducerStateLocked(); err != nil {
		return l.fail(err)
	}
	l.logger.Info("truncated log", "offset", offset, "log_end_offset", s.end)
	return nil
}

// truncateSegmentLocked cuts the in-memory state of s at offset, making it
// the active segment, and returns the file position to cut the file at. The
// caller holds wmu and mu for writing.
func (l *Log) truncateSegmentLocked(s *segment, offset int64) (int64, error) {
	if s.idx.mem == nil {
		if err := s.loadIndexes(); err != nil {
			return 0, err
		}
	}
	r, done := newReader(s.log.f, s.size)
	defer done()
	pos, _, found, err := l.translate(s, offset, r)
	if err != nil {
		return 0, err
	}
	if !found {
		pos = s.size
	}
	s.idx.truncateTo(offset)
	s.tix.truncateTo(offset)
	k, err := s.txn.keepBelow(offset)
	if err == nil {
		err = s.txn.cut(k)
	}
	if err != nil {
		return 0, err
	}
	s.txn.n = k
	s.size = pos
	r.limit = pos

	// New end: walk from the last remaining index entry.
	from := int64(0)
	if _, p, ok, _ := s.idx.last(); ok {
		from = p
	}
	s.end = s.base
	for p := from; p < pos; {
		h, err := r.header(p)
		if err != nil {
			return 0, err
		}
		s.end = h.NextOffset()
		p += int64(h.TotalSize())
	}
	// New maximum timestamp: the last time entry, then the batches after it.
	if s.maxTS, s.maxTSOff, err = s.tix.last(); err != nil {
		return 0, err
	}
	if from, err = s.idx.lookup(s.maxTSOff); err != nil {
		return 0, err
	}
	for p := from; p < pos; {
		h, err := r.header(p)
		if err != nil {
			return 0, err
		}
		if h.MaxTimestamp > s.maxTS {
			s.maxTS, s.maxTSOff = h.MaxTimestamp, h.LastOffset()
		}
		p += int64(h.TotalSize())
	}
	s.bytesSinceIndex = 0
	if pos == 0 {
		s.created, s.rollTS = l.now(), -1
	}
	return pos, nil
}

// TruncateFullyAndStartAt deletes every segment and restarts the log empty
// at offset (log start = log end = offset), for a follower whose leader's
// log starts beyond this log's end.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: start at %d", ErrOffsetOutOfRange, offset)
	}
	return l.truncateFullyLocked(offset)
}

func (l *Log) truncateFullyLocked(offset int64) error {
	// The checkpoint goes first: after a crash before the files are gone,
	// Open either finds the checkpoint above the old log end and empties
	// the log itself, or (when lowering) keeps the old files, which the
	// follower truncates again.
	if err := l.persistLogStartLocked(offset); err != nil {
		return l.fail(err)
	}
	l.lowerCleanerCheckpoint(-1)
	l.mu.Lock()
	l.truncGen.Add(1)
	doomed := l.segs
	// Unlink first: a doomed segment may carry the new segment's name.
	// Open readers keep their file descriptors.
	for _, s := range doomed {
		if err := s.removeFiles(l.fs); err != nil {
			l.mu.Unlock()
			return l.fail(err)
		}
	}
	s, err := createSegment(l.fs, l.dir, offset, l.cfg, l.now())
	if err != nil {
		l.mu.Unlock()
		return l.fail(err)
	}
	l.segs = []*segment{s}
	l.leo.Store(offset)
	l.logStart.Store(offset)
	l.mu.Unlock()
	snaps, err := listSnapshots(l.fs, l.dir)
	if err == nil {
		err = l.deleteSnapshots(snaps)
	}
	if err != nil {
		return l.fail(err)
	}
	l.snaps = nil
	l.ps = newProducerState()
	l.publishUnstableLocked()

	for _, d := range doomed {
		_ = d.closeIndexes()
		_ = d.log.release()
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", l.dir, err))
	}
	l.unflushed, l.firstUnflushed = 0, time.Time{}
	if err := l.epochs.Clear(); err != nil {
		return l.fail(err)
	}
	l.logger.Info("truncated log fully", "offset", offset)
	return nil
}

// SetLogStartOffset raises the log start offset (DeleteRecords) and deletes
// the segments wholly below it; the active segment always stays. Lowering it
// is a no-op; raising it past the log end offset is ErrOffsetOutOfRange. The
// new value is written to log-start-offset-checkpoint before any file goes,
// and Open restores it.
func (l *Log) SetLogStartOffset(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset > l.leo.Load() {
		return fmt.Errorf("%w: log start %d above log end %d", ErrOffsetOutOfRange, offset, l.leo.Load())
	}
	if offset <= l.logStart.Load() {
		return nil
	}
	if err := l.persistLogStartLocked(offset); err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	k := 0
	for k < len(l.segs)-1 && l.segs[k+1].base <= offset {
		k++
	}
	doomed := append([]*segment(nil), l.segs[:k]...)
	l.segs = append([]*segment(nil), l.segs[k:]...)
	l.logStart.Store(offset)
	l.mu.Unlock()
	if err := l.dropSegments(doomed); err != nil {
		return l.fail(err)
	}
	if err := l.dropSnapshotsBelowLocked(l.segs[0].base); err != nil {
		return l.fail(err)
	}
	if err := l.epochs.TruncateFromStart(offset); err != nil {
		return l.fail(err)
	}
	return nil
}

// dropSegments closes and deletes segments already removed from the list.
func (l *Log) dropSegments(doomed []*segment) error {
	if len(doomed) == 0 {
		return nil
	}
	var errs []error
	for _, s := range doomed {
		errs = append(errs, s.closeIndexes(), s.removeFiles(l.fs))
		_ = s.log.release()
	}
	errs = append(errs, l.fs.SyncDir(l.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete segments: %w", err)
	}
	return nil
}

// Close makes the log durable (final time index entry, index files written,
// everything fsynced) and closes it. Files that ReadResults still hold stay
// open until they are released. Closing twice is a no-op.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return nil
	}
	l.removePending(time.Time{}, true)
	var err error
	if l.failed.Load() == nil {
		s := l.active()
		l.mu.Lock()
		s.tix.maybeAdd(s.maxTS, s.maxTSOff)
		l.mu.Unlock()
		err = errors.Join(s.log.f.Sync(), s.idx.persist(true), s.tix.persist(true), s.txn.sync())
		if err == nil {
			// A clean stop leaves the producer state at the log end: the
			// next Open replays nothing.
			err = l.takeSnapshotLocked()
		}
		if err != nil {
			err = l.fail(fmt.Errorf("close %s: %w", s.logPath, err))
		}
	}
	l.closeFiles()
	return err
}

// closeFiles marks the log closed and drops its file references.
func (l *Log) closeFiles() {
	l.mu.Lock()
	segs := l.segs
	l.segs, l.closed = nil, true
	l.mu.Unlock()
	for _, s := range segs {
		_ = s.closeIndexes()
		_ = s.log.release()
	}
}

// Delete closes the log without flushing and removes its directory.
// ReadResults still outstanding keep reading their (unlinked) files until
// released.
func (l *Log) Delete() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if !l.closed {
		l.closeFiles()
	}
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	if err := l.fs.SyncDir(filepath.Dir(l.dir)); err != nil {
		return fmt.Errorf("delete log %s: sync parent: %w", l.dir, err)
	}
	return nil
}

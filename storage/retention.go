package storage

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// deletedSuffix marks a file of a segment that left the log and waits for
// file.delete.delay.ms before it is unlinked (Kafka's LogFileUtils.DELETED_FILE_SUFFIX).
const deletedSuffix = ".deleted"

// pendingDelete is a set of ".deleted" files to unlink at due.
type pendingDelete struct {
	paths []string
	due   time.Time
}

// SetStableOffset bounds retention and compaction: ApplyRetention deletes
// only segments wholly below offset, and Compact cleans only below it. The
// partition passes its last stable offset (at most the high watermark)
// whenever it moves, as Kafka bounds deletion by the high watermark and
// cleaning by the last stable offset: data a follower may not have yet is
// neither deleted nor compacted away. Until it is called the log is
// unbounded, which suits a single-replica log without transactions.
func (l *Log) SetStableOffset(offset int64) { l.stableOffset.Store(offset) }

// ApplyRetention is Kafka's deleteOldSegments for one log. With the delete
// cleanup policy it deletes, oldest first, the closed segments whose largest
// timestamp (the file's modification time when no batch has one) is more
// than RetentionMs before now, then those the log can lose while its size
// stays at or above RetentionBytes; with either policy it deletes segments
// wholly below the log start offset. The active segment and segments not
// wholly below the stable offset (SetStableOffset) always stay.
//
// The log start offset rises to the first remaining segment's base and is
// checkpointed before anything is deleted. Deleted segments leave the
// segment list at once (reads below the new start get ErrOffsetOutOfRange,
// ReadResults already handed out keep reading their open file); their
// files are renamed with a ".deleted" suffix and unlinked by the first
// ApplyRetention or Compact call FileDeleteDelayMs later, by Close, or, after
// a crash, by Open.
func (l *Log) ApplyRetention(now time.Time) (deletedSegments int, err error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.removePending(now, false)

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	cfg, bound := l.cfg, l.stableOffset.Load()
	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	var total int64
	for _, s := range segs {
		total += s.size
	}
	logStart := l.logStart.Load()
	k := 0 // segs[:k] go
	for ; k < len(segs)-1; k++ {
		s, next := segs[k], segs[k+1].base
		if next > bound {
			break
		}
		if next <= logStart {
			total -= s.size
			continue
		}
		if !cfg.Delete {
			break
		}
		expired := false
		if cfg.RetentionMs >= 0 {
			ts, err := s.largestTimestamp()
			if err != nil {
				return 0, err
			}
			expired = now.UnixMilli()-ts > cfg.RetentionMs
		}
		if !expired && !(cfg.RetentionBytes >= 0 && total-s.size >= cfg.RetentionBytes) {
			break
		}
		total -= s.size
	}
	if k == 0 {
		return 0, nil
	}
	if err := l.retireLeadingLocked(k, now, cfg.FileDeleteDelayMs); err != nil {
		return 0, err
	}
	l.logger.Info("deleted log segments by retention", "segments", k, "log_start_offset", l.logStart.Load(),
		"retention_ms", cfg.RetentionMs, "retention_bytes", cfg.RetentionBytes)
	return k, nil
}

// largestTimestamp is Kafka's LogSegment.largestTimestamp: the largest batch
// timestamp, or the file's modification time when no batch carries one. The
// caller holds wmu (a sealed segment's maxTS does not change).
func (s *segment) largestTimestamp() (int64, error) {
	if s.maxTS >= 0 {
		return s.maxTS, nil
	}
	st, err := s.log.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	return st.ModTime().UnixMilli(), nil
}

// retireLeadingLocked removes the first k segments (never the active one)
// from the log: the new log start is checkpointed first, then the list
// changes, then the files are renamed to ".deleted" and scheduled for
// removal after delayMs. The caller holds wmu.
func (l *Log) retireLeadingLocked(k int, now time.Time, delayMs int64) error {
	newStart := max(l.logStart.Load(), l.segs[k].base)
	if newStart > l.logStart.Load() {
		if err := l.persistLogStartLocked(newStart); err != nil {
			return l.fail(err)
		}
	}
	l.mu.Lock()
	doomed := append([]*segment(nil), l.segs[:k]...)
	l.segs = append([]*segment(nil), l.segs[k:]...)
	l.logStart.Store(newStart)
	l.mu.Unlock()
	if err := l.epochs.TruncateFromStart(newStart); err != nil {
		return l.fail(err)
	}
	if err := l.dropSnapshotsBelowLocked(l.segs[0].base); err != nil {
		return l.fail(err)
	}
	paths, err := l.renameDeleted(doomed)
	for _, s := range doomed {
		_ = s.closeIndexes()
		_ = s.log.release()
	}
	if err != nil {
		return l.fail(err)
	}
	l.schedule(paths, now, delayMs)
	return nil
}

// renameDeleted renames the files of segments that left the list to
// "<name>.deleted" and syncs the directory. Open readers keep their file
// descriptors.
func (l *Log) renameDeleted(segs []*segment) ([]string, error) {
	var paths []string
	for _, s := range segs {
		files := []string{s.idx.path, s.tix.path, s.logPath}
		if s.txn.f != nil {
			files = append([]string{s.txn.path}, files...)
		}
		for _, p := range files {
			if err := l.fs.Rename(p, p+deletedSuffix); err != nil {
				return paths, fmt.Errorf("rename %s for deletion: %w", p, err)
			}
			paths = append(paths, p+deletedSuffix)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return paths, fmt.Errorf("sync %s: %w", l.dir, err)
	}
	return paths, nil
}

// schedule unlinks paths delayMs after now, or at once when delayMs is 0.
func (l *Log) schedule(paths []string, now time.Time, delayMs int64) {
	if len(paths) == 0 {
		return
	}
	if delayMs <= 0 {
		l.unlink(paths)
		return
	}
	due := now.Add(time.Duration(min(delayMs, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond)
	l.pendMu.Lock()
	l.pending = append(l.pending, pendingDelete{paths: paths, due: due})
	l.pendMu.Unlock()
}

// removePending unlinks the scheduled files that are due at now, or all of
// them.
func (l *Log) removePending(now time.Time, all bool) {
	l.pendMu.Lock()
	var due []string
	keep := l.pending[:0]
	for _, p := range l.pending {
		if all || !now.Before(p.due) {
			due = append(due, p.paths...)
		} else {
			keep = append(keep, p)
		}
	}
	l.pending = keep
	l.pendMu.Unlock()
	l.unlink(due)
}

// unlink removes files that no longer belong to the log. A failure is
// logged, not fatal: the file is garbage that Open removes anyway.
func (l *Log) unlink(paths []string) {
	var errs []error
	for _, p := range paths {
		errs = append(errs, removeIfExists(l.fs, p))
	}
	if err := errors.Join(errs...); err != nil {
		l.logger.Warn("removing deleted segment files failed", "err", err)
	}
}

// restoreLogStart applies the persisted log start offset after load.
func (l *Log) restoreLogStart() error {
	ckpt, err := readLogStartCheckpoint(l.fs, l.dir)
	if err != nil || ckpt <= l.segs[0].base {
		return err
	}
	if leo := l.leo.Load(); ckpt > leo {
		l.logger.Warn("log end offset below the checkpointed log start offset, deleting all segments",
			"log_end_offset", leo, "log_start_offset", ckpt)
		if err := l.truncateFullyLocked(ckpt); err != nil {
			return err
		}
		return nil
	}
	k := 0
	for k < len(l.segs)-1 && l.segs[k+1].base <= ckpt {
		k++
	}
	doomed := l.segs[:k]
	l.segs = append([]*segment(nil), l.segs[k:]...)
	l.logStart.Store(ckpt)
	if err := l.dropSegments(doomed); err != nil {
		return err
	}
	return l.epochs.TruncateFromStart(ckpt)
}

// lowerCleanerCheckpoint moves the cleaner's first dirty offset down to
// offset after a truncation (-1: forget it), so that records appended again
// above it count as dirty. The file catches up at the next Compact; until
// then a crash leaves it too high, which costs compaction, not data: records
// below the checkpoint are only ever kept or dropped against later keys.
func (l *Log) lowerCleanerCheckpoint(offset int64) {
	l.ckptMu.Lock()
	if offset < 0 {
		l.ckpt = cleanerCheckpoint{firstDirty: -1, deleteHorizon: -1}
	} else if l.ckpt.firstDirty > offset {
		l.ckpt.firstDirty = offset
	}
	l.ckptMu.Unlock()
}

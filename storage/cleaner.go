package storage

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Suffixes of a compaction in progress, as Kafka names them: a cleaned
// segment is written as "<name>.cleaned", renamed "<name>.swap" once it is
// complete and the swap is decided, and renamed to its final name after
// the segments it replaces became "<name>.deleted".
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"
)

// CleanStats reports what one Compact call did.
type CleanStats struct {
	// Passes counts key-map passes; 0 when the log was not worth cleaning.
	// More than one means the key map filled up.
	Passes int
	// DirtyRatio is the share of dirty bytes in the closed segments when the
	// call began.
	DirtyRatio float64
	// FirstDirtyOffset is where the call began reading keys; EndOffset is the
	// cleaner checkpoint it left (everything below is clean).
	FirstDirtyOffset int64
	EndOffset        int64
	// SegmentsCleaned counts the old segments replaced.
	SegmentsCleaned int
	BytesRead       int64
	BytesWritten    int64
	RecordsRemoved  int64
	BatchesRemoved  int64
	// MapBytes is the largest key map the call allocated; at most
	// LogConfig.CleanerDedupeBufferBytes.
	MapBytes int64
}

// segInfo is a segment and its published state when a pass began.
type segInfo struct {
	s                      *segment
	base, end, size, maxTS int64
	txnF                   File // the .txnindex as published, nil without one
	txnN                   int
}

// cleanSnap is the log as one cleaning pass sees it: every segment (the
// last is the active one), each with a reference on its .log file so it
// stays readable whatever the writer does meanwhile.
type cleanSnap struct {
	segs     []segInfo
	gen      uint64
	logStart int64
}

func (c *cleanSnap) release() {
	for _, si := range c.segs {
		_ = si.s.log.release()
	}
}

// Compact runs Kafka's log cleaner on this log once, for the compact cleanup
// policy; it does nothing without LogConfig.Compact.
//
// The dirty section starts at the cleaner checkpoint and ends at the first
// uncleanable offset: the active segment's base, the first segment whose
// largest timestamp is within MinCompactionLagMs of now, or the stable
// offset (SetStableOffset), whichever is lowest. Cleaning happens only when
// the dirty section's share of the closed segments' bytes is at least
// MinCleanableDirtyRatio, or when a kept tombstone's delete horizon has
// passed. A pass reads the dirty section's keys into a map of bounded size,
// then rewrites every closed segment from the log start up to where the map
// ended (batch rules: batchFilter.filter), merging neighbours while they fit
// segment.bytes, and swaps each rewritten group in (protocol in the package
// doc). A full map ends the pass early; the next pass starts where it
// stopped, until the dirty section is done.
//
// Compact reads and writes without the writer lock, so appends and reads go
// on; it takes the lock only to swap files. A truncation that happens
// meanwhile makes the pass drop its output. Compact and ApplyRetention are
// serialised with each other; the broker calls them from one goroutine.
// Errors leave the log as it was (the pass is abandoned) unless a swap
// failed half way, which fails the log (ErrLogFailed).
func (l *Log) Compact(now time.Time) (CleanStats, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.removePending(now, false)
	st := CleanStats{FirstDirtyOffset: -1, EndOffset: -1}

	l.wmu.Lock()
	cfg, err := l.cfg, l.writableLocked()
	l.wmu.Unlock()
	if err != nil || !cfg.Compact {
		return st, err
	}
	for {
		snap, err := l.snapshotForClean()
		if err != nil {
			return st, err
		}
		l.ckptMu.Lock()
		ckpt := l.ckpt
		l.ckptMu.Unlock()
		firstDirty, uncleanable, ratio, err := l.dirtyRange(snap, ckpt, cfg, now)
		if err != nil {
			snap.release()
			return st, err
		}
		if st.Passes == 0 {
			st.DirtyRatio, st.FirstDirtyOffset, st.EndOffset = ratio, firstDirty, firstDirty
			horizonDue := ckpt.deleteHorizon >= 0 && now.UnixMilli() >= ckpt.deleteHorizon
			if !horizonDue && (firstDirty >= uncleanable || ratio < cfg.MinCleanableDirtyRatio) {
				snap.release()
				return st, nil
			}
		} else if firstDirty >= uncleanable {
			snap.release()
			return st, nil
		}
		st.Passes++
		end, committed, err := l.cleanPass(snap, firstDirty, uncleanable, cfg, now, &st)
		snap.release()
		if err != nil && l.truncGen.Load() != snap.gen {
			// A truncation raced the pass: its output is void, not an error.
			return st, nil
		}
		if err != nil || !committed {
			return st, err
		}
		st.EndOffset = end
		if end >= uncleanable {
			return st, nil
		}
	}
}

// snapshotForClean takes the segment list with a reference on every file.
func (l *Log) snapshotForClean() (*cleanSnap, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	snap := &cleanSnap{gen: l.truncGen.Load(), logStart: l.logStart.Load()}
	for _, s := range l.segs {
		s.log.acquire()
		si := segInfo{s: s, base: s.base, end: s.end, size: s.size, maxTS: s.maxTS, txnN: s.txn.n}
		if si.txnN > 0 {
			si.txnF = s.txn.f
		}
		snap.segs = append(snap.segs, si)
	}
	return snap, nil
}

// dirtyRange is Kafka's LogCleanerManager.cleanableOffsets and dirty ratio
// for the snapshot.
func (l *Log) dirtyRange(snap *cleanSnap, ckpt cleanerCheckpoint, cfg LogConfig, now time.Time) (firstDirty, uncleanable int64, ratio float64, err error) {
	active := snap.segs[len(snap.segs)-1]
	firstDirty = ckpt.firstDirty
	if firstDirty < snap.logStart || firstDirty > active.base {
		firstDirty = snap.logStart
	}
	uncleanable = min(active.base, l.stableOffset.Load())
	if cfg.MinCompactionLagMs > 0 {
		for _, si := range snap.segs[:len(snap.segs)-1] {
			if si.end <= firstDirty {
				continue
			}
			ts := si.maxTS
			if ts < 0 {
				if ts, err = si.s.largestTimestamp(); err != nil {
					return 0, 0, 0, err
				}
			}
			if ts > now.UnixMilli()-cfg.MinCompactionLagMs {
				uncleanable = min(uncleanable, si.base)
				break
			}
		}
	}
	uncleanable = max(uncleanable, firstDirty)
	var clean, dirty int64
	for _, si := range snap.segs[:len(snap.segs)-1] {
		switch {
		case si.end <= firstDirty:
			clean += si.size
		case si.base < uncleanable:
			dirty += si.size
		}
	}
	if clean+dirty > 0 {
		ratio = float64(dirty) / float64(clean+dirty)
	}
	return firstDirty, uncleanable, ratio, nil
}

// cleanPass is one pass: build the key map from firstDirty, rewrite the
// closed segments below where the map ended, swap them in and advance the
// checkpoint. committed=false means the log changed under the pass and its
// output was dropped.
func (l *Log) cleanPass(snap *cleanSnap, firstDirty, uncleanable int64, cfg LogConfig, now time.Time, st *CleanStats) (end int64, committed bool, err error) {
	memBytes := cfg.CleanerDedupeBufferBytes
	if memBytes == 0 {
		memBytes = DefaultCleanerDedupeBufferBytes
	}
	keys := newOffsetMap(memBytes, uncleanable-firstDirty)
	st.MapBytes = max(st.MapBytes, keys.bytes())
	end, err = buildKeyMap(snap, keys, firstDirty, uncleanable)
	if err != nil {
		return 0, false, err
	}
	producers, err := lastBatchOfProducers(snap)
	if err != nil {
		return 0, false, err
	}
	f := &batchFilter{
		keys: keys, mapEnd: end, nowMs: now.UnixMilli(),
		newHorizon: now.UnixMilli() + cfg.DeleteRetentionMs, lastOfProducer: producers, minHorizon: -1,
	}
	closed := snap.segs[:len(snap.segs)-1]
	for i := 0; i < len(closed) && closed[i].base < end; {
		if closed[i].end <= snap.logStart {
			i++
			continue
		}
		group := groupFrom(closed[i:], end, cfg.SegmentBytes)
		i += len(group)
		ok, err := l.cleanGroup(snap.gen, group, f, cfg, now, st)
		if err != nil || !ok {
			return 0, false, err
		}
	}
	st.RecordsRemoved += f.recordsRemoved
	st.BatchesRemoved += f.batchesRemoved

	l.ckptMu.Lock()
	if l.truncGen.Load() != snap.gen {
		l.ckptMu.Unlock()
		return 0, false, nil
	}
	l.ckpt = cleanerCheckpoint{firstDirty: end, deleteHorizon: f.minHorizon}
	l.ckptMu.Unlock()
	// Only the cleaner writes the file, under cleanMu. A crash before it
	// lands means redoing the pass.
	if err := writeCheckpointInts(l.fs, filepath.Join(l.dir, CleanerOffsetCheckpointFile), end, f.minHorizon); err != nil {
		return 0, false, err
	}
	return end, true, nil
}

// groupFrom takes the segments from segs[0] that one cleaned segment can
// replace (Kafka's groupSegmentsBySize): it always takes the first, then
// the next ones while their total size stays within segment.bytes, their
// offsets within an int32 of the first base, and they start below end.
func groupFrom(segs []segInfo, end, segmentBytes int64) []segInfo {
	n, size := 1, segs[0].size
	for n < len(segs) && segs[n].base < end && size+segs[n].size <= segmentBytes &&
		segs[n].end-1-segs[0].base <= math.MaxInt32 {
		size += segs[n].size
		n++
	}
	return segs[:n]
}

// walkBatches calls fn with every whole batch of the snapshot segment si
// whose last offset is at least from; fn returns false to stop. The batch
// bytes are valid only during the call.
func walkBatches(si segInfo, from int64, fn func(b []byte, h batch.Header) (bool, error)) (bool, error) {
	r, done := newReader(si.s.log.f, si.size)
	defer done()
	for p := int64(0); p < si.size; {
		h, err := r.header(p)
		if err != nil {
			return false, fmt.Errorf("%s at %d: %w", si.s.logPath, p, err)
		}
		if h.LastOffset() >= from {
			b, err := r.at(p, h.TotalSize())
			if err != nil {
				return false, fmt.Errorf("%s at %d: %w", si.s.logPath, p, err)
			}
			if got := batch.CRC(b); got != h.CRC {
				return false, fmt.Errorf("%w: %s: batch at %d (offset %d): crc %08x, computed %08x",
					batch.ErrCorrupt, si.s.logPath, p, h.BaseOffset, h.CRC, got)
			}
			more, err := fn(b, h)
			if err != nil || !more {
				return false, err
			}
		}
		p += int64(h.TotalSize())
	}
	return true, nil
}

// buildKeyMap reads the keys of the records in [from, to) into keys, in
// offset order, and returns where it stopped: to, or the first record whose
// key did not fit. Records of transactional and control batches are left
// out (see batchFilter.filter).
func buildKeyMap(snap *cleanSnap, keys *offsetMap, from, to int64) (int64, error) {
	end := to
	for _, si := range snap.segs[:len(snap.segs)-1] {
		if si.end <= from {
			continue
		}
		if si.base >= to {
			break
		}
		more, err := walkBatches(si, from, func(b []byte, h batch.Header) (bool, error) {
			if h.BaseOffset >= to {
				return false, nil
			}
			if h.IsControl() || h.IsTransactional() {
				return true, nil
			}
			full := false
			err := forEachRaw(b, h, func(r rawRecord) bool {
				off := h.BaseOffset + int64(r.offDelta)
				if off < from || r.key == nil {
					return true
				}
				if off >= to {
					return false
				}
				if !keys.put(r.key, off) {
					end, full = off, true
					return false
				}
				return true
			})
			if err != nil {
				return false, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
			}
			return !full, nil
		})
		if err != nil {
			return 0, fmt.Errorf("build key map: %w", err)
		}
		if !more {
			break
		}
	}
	return end, nil
}

// lastBatchOfProducers maps each producer ID to the last offset of its last
// data batch in the snapshot, reading batch headers only.
func lastBatchOfProducers(snap *cleanSnap) (map[int64]int64, error) {
	last := map[int64]int64{}
	for _, si := range snap.segs {
		r, done := newReader(si.s.log.f, si.size)
		for p := int64(0); p < si.size; {
			h, err := r.header(p)
			if err != nil {
				done()
				return nil, fmt.Errorf("scan producers: %s at %d: %w", si.s.logPath, p, err)
			}
			if h.ProducerID >= 0 && !h.IsControl() {
				last[h.ProducerID] = h.LastOffset()
			}
			p += int64(h.TotalSize())
		}
		done()
	}
	return last, nil
}

// cleanGroup writes the cleaned form of group into "<first base>.*.cleaned"
// files and swaps it in. It reports false when the log changed under it.
func (l *Log) cleanGroup(gen uint64, group []segInfo, f *batchFilter, cfg LogConfig, now time.Time, st *CleanStats) (bool, error) {
	base := group[0].base
	logPath, idxPath, tixPath := segmentPaths(l.dir, base)
	c, err := createSegmentFiles(l.fs, logPath+cleanedSuffix, idxPath+cleanedSuffix, tixPath+cleanedSuffix, base, cfg, now)
	if err != nil {
		return false, fmt.Errorf("clean: %w", err)
	}
	c.logPath = logPath + cleanedSuffix
	w := &fileWriter{f: c.log.f}
	changed := len(group) > 1
	for _, si := range group {
		st.BytesRead += si.size
		_, err := walkBatches(si, math.MinInt64, func(b []byte, h batch.Header) (bool, error) {
			out, err := f.filter(b, h)
			if err != nil {
				return false, fmt.Errorf("clean batch at offset %d: %w", h.BaseOffset, err)
			}
			if len(out) != len(b) || (len(out) > 0 && &out[0] != &b[0]) {
				changed = true
			}
			if out == nil {
				return true, nil
			}
			if w.pos+int64(len(out)) > math.MaxInt32 {
				return false, fmt.Errorf("%w: cleaned segment at %d passes 2 GiB", ErrRecordBatchTooLarge, base)
			}
			oh, _ := batch.ParseHeader(out)
			c.indexBatch(oh, w.pos, cfg.IndexIntervalBytes)
			return true, w.write(out)
		})
		if err != nil {
			l.discardCleaned(c)
			return false, err
		}
	}
	if !changed {
		l.discardCleaned(c)
		return true, nil
	}
	c.tix.maybeAdd(c.maxTS, c.maxTSOff)
	if c.txn, err = buildCleanedTxnIndex(l.fs, txnIndexPath(l.dir, base)+cleanedSuffix, group); err != nil {
		l.discardCleaned(c)
		return false, fmt.Errorf("write cleaned segment %s: %w", c.logPath, err)
	}
	if err := errors.Join(w.flush(), c.log.f.Sync(), c.idx.persist(true), c.tix.persist(true)); err != nil {
		l.discardCleaned(c)
		return false, fmt.Errorf("write cleaned segment %s: %w", c.logPath, err)
	}
	c.size, c.end = w.pos, group[len(group)-1].end
	st.BytesWritten += w.pos
	old := make([]*segment, len(group))
	for i, si := range group {
		old[i] = si.s
	}
	paths, ok, err := l.swapIn(gen, old, c)
	if ok {
		st.SegmentsCleaned += len(old)
		l.schedule(paths, now, cfg.FileDeleteDelayMs)
		l.logger.Debug("compacted log segments", "offset", base, "segments", len(old), "bytes", c.size)
	}
	return ok, err
}

// discardCleaned closes and removes an unused cleaned segment.
func (l *Log) discardCleaned(c *segment) {
	_ = c.closeIndexes()
	_ = c.log.release()
	l.unlink([]string{c.logPath, c.idx.path, c.tix.path, txnIndexPath(l.dir, c.base) + cleanedSuffix})
}

// swapIn replaces the segments old, which must still be consecutive closed
// segments of the log with no truncation since the pass began, by the
// cleaned segment c. The order of renames is the swap protocol of the
// package doc; a failure half way fails the log, and Open completes or
// undoes the swap. It returns the ".deleted" files to unlink.
func (l *Log) swapIn(gen uint64, old []*segment, c *segment) ([]string, bool, error) {
	if l.hookBeforeSwap != nil {
		l.hookBeforeSwap()
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		l.discardCleaned(c)
		return nil, false, err
	}
	l.mu.RLock()
	i := len(l.segs)
	for j, s := range l.segs {
		if s == old[0] {
			i = j
			break
		}
	}
	ok := l.truncGen.Load() == gen && i+len(old) < len(l.segs)
	for j := 0; ok && j < len(old); j++ {
		ok = l.segs[i+j] == old[j]
	}
	l.mu.RUnlock()
	if !ok {
		l.discardCleaned(c)
		return nil, false, nil
	}

	logPath, idxPath, tixPath := segmentPaths(l.dir, c.base)
	final := []string{idxPath, tixPath, logPath} // the .log last: its .swap commits
	txnPath := txnIndexPath(l.dir, c.base)
	if c.txn.f != nil {
		final = append([]string{txnPath}, final...)
	}
	for _, p := range final {
		if err := l.fs.Rename(p+cleanedSuffix, p+swapSuffix); err != nil {
			return nil, false, l.fail(fmt.Errorf("swap in %s: %w", p, err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return nil, false, l.fail(fmt.Errorf("swap in %s: sync %s: %w", logPath, l.dir, err))
	}
	deleted, err := l.renameDeleted(old)
	if err != nil {
		return nil, false, l.fail(fmt.Errorf("swap in %s: %w", logPath, err))
	}
	for _, p := range final {
		if err := l.fs.Rename(p+swapSuffix, p); err != nil {
			return nil, false, l.fail(fmt.Errorf("swap in %s: %w", p, err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return nil, false, l.fail(fmt.Errorf("swap in %s: sync %s: %w", logPath, l.dir, err))
	}
	c.logPath, c.idx.path, c.tix.path, c.txn.path = logPath, idxPath, tixPath, txnPath
	c.idx.mem, c.tix.mem = nil, nil // sealed: searched in the file
	l.mu.Lock()
	segs := make([]*segment, 0, len(l.segs)-len(old)+1)
	segs = append(segs, l.segs[:i]...)
	segs = append(segs, c)
	segs = append(segs, l.segs[i+len(old):]...)
	l.segs = segs
	l.mu.Unlock()
	for _, s := range old {
		_ = s.closeIndexes()
		_ = s.log.release()
	}
	return deleted, true, nil
}

// fileWriter appends to a file through a buffer.
type fileWriter struct {
	f   File
	buf []byte
	pos int64 // bytes written, buffered ones included
	at  int64 // file position of buf[0]
}

func (w *fileWriter) write(b []byte) error {
	if len(w.buf)+len(b) > 1<<20 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(b) >= 1<<20 {
		if _, err := w.f.WriteAt(b, w.at); err != nil {
			return err
		}
		w.at += int64(len(b))
	} else {
		w.buf = append(w.buf, b...)
	}
	w.pos += int64(len(b))
	return nil
}

func (w *fileWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.at); err != nil {
		return err
	}
	w.at += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

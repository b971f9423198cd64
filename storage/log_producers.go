package storage

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// AppendInfo is what AppendAsLeader did.
type AppendInfo struct {
	// FirstOffset and LastOffset span the appended batches, or the original
	// batch when Duplicate.
	FirstOffset, LastOffset int64
	// Duplicate: the batch repeats one of its producer's last five batches;
	// nothing was written and the offsets are the original's.
	Duplicate bool
	// Timestamp of a duplicate: the original batch's max timestamp (its
	// append time on a LogAppendTime topic).
	Timestamp int64
}

// ProducerInfo describes one producer known to the log, for
// DescribeProducers.
type ProducerInfo struct {
	ProducerID    int64
	ProducerEpoch int16
	LastSequence  int32 // -1 when its last write was a marker of a new epoch
	// LastTimestamp is the max timestamp of its last batch or marker.
	LastTimestamp    int64
	CoordinatorEpoch int32 // of the last marker, -1 none
	// CurrentTxnStartOffset is the first offset of its open transaction, -1 none.
	CurrentTxnStartOffset int64
}

// pendingProducer is a producer's state as a check sees it part way
// through the batches of one append.
type pendingProducer struct {
	pid int64
	e   producerEntry
}

// AppendAsLeader is the leader's append: under the writer lock it checks
// every batch with a producer ID against the producer state (Kafka's
// ProducerAppendInfo rules, see producerEntry.checkData and checkMarker),
// assigns offsets from the log end offset, stamps leaderEpoch into each
// batch and, when logAppendTime >= 0, the append time (LogAppendTime
// topics), writes them and updates the producer state, the open
// transactions and the transaction index. The batches must have been
// validated (CRC, sizes) by the caller; they are rewritten in place.
//
// A batch that repeats one of its producer's last five batches makes the
// whole append a duplicate: nothing is written and AppendInfo carries the
// original's offsets. A failed check writes nothing and returns
// ErrOutOfOrderSequence, ErrInvalidProducerEpoch, ErrInvalidTxnState or
// ErrCoordinatorFenced (wrapped). Batches without sequence numbers
// (coordinator writes) skip the sequence checks; control batches are
// transaction markers.
func (l *Log) AppendAsLeader(batches []byte, leaderEpoch int32, logAppendTime int64) (AppendInfo, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendInfo{}, err
	}
	leo := l.leo.Load()
	var buf [2]pendingProducer
	pend := buf[:0]
	next := leo
	for pos := 0; pos < len(batches); {
		h, err := batch.ParseHeader(batches[pos:])
		if err != nil {
			return AppendInfo{}, fmt.Errorf("%w: batch at byte %d: %w", ErrInvalidAppend, pos, err)
		}
		size := h.TotalSize()
		if size > len(batches)-pos || h.LastOffsetDelta < 0 {
			return AppendInfo{}, fmt.Errorf("%w: batch at byte %d: %d bytes, last offset delta %d, %d bytes remain",
				ErrInvalidAppend, pos, size, h.LastOffsetDelta, len(batches)-pos)
		}
		h.BaseOffset = next
		if h.ProducerID >= 0 {
			i := slices.IndexFunc(pend, func(p pendingProducer) bool { return p.pid == h.ProducerID })
			if i < 0 {
				pend = append(pend, pendingProducer{pid: h.ProducerID, e: l.ps.entry(h.ProducerID)})
				i = len(pend) - 1
			}
			e := &pend[i].e
			if h.IsControl() {
				m, ok, err := parseMarker(batches[pos : pos+size])
				if err != nil {
					return AppendInfo{}, fmt.Errorf("%w: control batch at byte %d: %w", ErrInvalidAppend, pos, err)
				}
				if ok {
					if err := e.checkMarker(h, m); err != nil {
						return AppendInfo{}, err
					}
					e.applyMarker(h.ProducerID, h, m)
				}
			} else {
				if dup, ok := e.duplicateOf(h); ok {
					return AppendInfo{FirstOffset: dup.firstOffset(), LastOffset: dup.lastOffset, Duplicate: true, Timestamp: dup.timestamp}, nil
				}
				if err := e.checkData(h); err != nil {
					return AppendInfo{}, err
				}
				e.applyData(h)
			}
		}
		next = h.NextOffset()
		pos += size
	}
	off := leo
	for pos := 0; pos < len(batches); {
		h, _ := batch.ParseHeader(batches[pos:])
		b := batches[pos : pos+h.TotalSize()]
		batch.SetBaseOffset(b, off)
		batch.SetPartitionLeaderEpoch(b, leaderEpoch)
		if logAppendTime >= 0 {
			batch.SetLogAppendTime(b, logAppendTime)
		}
		off += int64(h.LastOffsetDelta) + 1
		pos += h.TotalSize()
	}
	if err := l.appendLocked(batches); err != nil {
		return AppendInfo{}, err
	}
	return AppendInfo{FirstOffset: leo, LastOffset: next - 1, Timestamp: -1}, nil
}

// AppendControl appends a transaction marker for producerID at epoch: a
// COMMIT or ABORT control batch (magic 2, transactional and control
// attributes, key version 0 + type, value version 0 + coordinatorEpoch)
// stamped with leaderEpoch and timestamp now (Unix ms). It ends the
// producer's open transaction; an abort is added to the transaction index
// of the active segment. A marker from an older coordinator epoch is
// ErrCoordinatorFenced, from an older producer epoch ErrInvalidProducerEpoch.
func (l *Log) AppendControl(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, leaderEpoch int32, now int64) (offset int64, err error) {
	if producerID < 0 {
		return -1, fmt.Errorf("%w: marker for producer ID %d", ErrInvalidAppend, producerID)
	}
	info, err := l.AppendAsLeader(controlBatch(producerID, epoch, commit, coordinatorEpoch, now), leaderEpoch, -1)
	if err != nil {
		return -1, err
	}
	return info.FirstOffset, nil
}

// applyBatchLocked updates the producer state for the batch h with a
// producer ID, written to segment s at its offsets; b is the whole batch
// (read only for control batches). An ended abort goes into s's
// transaction index. The caller holds wmu.
func (l *Log) applyBatchLocked(s *segment, h batch.Header, b []byte) error {
	pid := h.ProducerID
	e := l.ps.entry(pid)
	if h.IsControl() {
		m, ok, err := parseMarker(b)
		if err != nil {
			l.logger.Warn("ignoring undecodable control batch", "offset", h.BaseOffset, "err", err)
			return nil
		}
		if !ok {
			return nil
		}
		if txn, ended := e.applyMarker(pid, h, m); ended {
			if txn.abort {
				at := AbortedTxn{ProducerID: pid, FirstOffset: txn.firstOffset, LastOffset: txn.lastOffset,
					LastStableOffset: l.ps.lastStableFor(txn)}
				if err := s.txn.write(l.fs, s.txn.n, at); err != nil {
					return err
				}
				l.mu.Lock()
				s.txn.n++
				l.mu.Unlock()
			}
			l.ps.complete(txn)
		}
	} else {
		e.applyData(h)
	}
	l.ps.put(pid, e)
	return nil
}

// publishUnstableLocked makes the producer state's first unstable offset
// visible to readers.
func (l *Log) publishUnstableLocked() { l.firstUnstable.Store(l.ps.firstUnstable()) }

// FirstUnstableOffset is the first offset of the earliest transaction that
// is open, or ended by a marker not yet below the high watermark
// (OnHighWatermarkUpdated); -1 when there is none. The last stable offset
// is the smaller of it and the high watermark.
func (l *Log) FirstUnstableOffset() int64 { return l.firstUnstable.Load() }

// OnHighWatermarkUpdated tells the log the high watermark: transactions
// whose markers are below it are stable.
func (l *Log) OnHighWatermarkUpdated(hw int64) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.ps == nil || len(l.ps.unreplicated) == 0 {
		return
	}
	l.ps.onHighWatermark(hw)
	l.publishUnstableLocked()
}

// HasOngoingTransaction reports whether the producer has a transaction open
// in this log: a transactional batch whose marker is not written yet.
func (l *Log) HasOngoingTransaction(producerID int64) bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.ps == nil {
		return false
	}
	e := l.ps.producers[producerID]
	return e != nil && e.txnFirst >= 0
}

// ActiveProducers lists the producers the log knows, by producer ID.
func (l *Log) ActiveProducers() []ProducerInfo {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.ps == nil {
		return nil
	}
	out := make([]ProducerInfo, 0, len(l.ps.producers))
	for pid, e := range l.ps.producers {
		out = append(out, ProducerInfo{
			ProducerID: pid, ProducerEpoch: e.epoch, LastSequence: e.lastSeq(), LastTimestamp: e.lastTimestamp,
			CoordinatorEpoch: e.coordinatorEpoch, CurrentTxnStartOffset: e.txnFirst,
		})
	}
	slices.SortFunc(out, func(a, b ProducerInfo) int { return cmpInt64(a.ProducerID, b.ProducerID) })
	return out
}

// RemoveExpiredProducers forgets the producers without an open transaction
// whose last write is at least producer.id.expiration.ms before now, and
// returns how many went. The broker calls it periodically, as Kafka's
// PeriodicProducerExpirationCheck does.
func (l *Log) RemoveExpiredProducers(now time.Time) int {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.ps == nil || l.closed {
		return 0
	}
	return l.ps.removeExpired(now.UnixMilli(), l.cfg.producerExpirationMs())
}

// loadProducerState builds the producer state at Open: the newest valid
// snapshot at or below the log end offset, then the batches after it.
func (l *Log) loadProducerState() error {
	snaps, err := listSnapshots(l.fs, l.dir)
	if err != nil {
		return err
	}
	l.snaps = snaps
	replayed, err := l.rebuildProducerStateLocked()
	if err != nil {
		return err
	}
	if replayed {
		// Kafka snapshots after a rebuild too: the next start is cheap.
		if err := l.takeSnapshotLocked(); err != nil {
			return err
		}
	}
	return nil
}

// rebuildProducerStateLocked drops the snapshots above the log end offset,
// loads the newest readable one (corrupt ones are deleted with a warning),
// and replays the log from there (from the first segment without one). It
// reports whether batches were replayed. The caller holds wmu, or is Open.
func (l *Log) rebuildProducerStateLocked() (bool, error) {
	leo := l.leo.Load()
	if err := l.dropSnapshotsLocked(func(off int64) bool { return off > leo }); err != nil {
		return false, err
	}
	l.ps = newProducerState()
	nowMs, expiry := l.now().UnixMilli(), l.cfg.producerExpirationMs()
	from := l.segs[0].base
	for i := len(l.snaps) - 1; i >= 0; i-- {
		off := l.snaps[i]
		entries, err := readSnapshotFile(l.fs, l.dir, off)
		if errors.Is(err, ErrCorruptFile) || isNotExist(err) {
			l.logger.Warn("deleting unreadable producer state snapshot", "offset", off, "err", err)
			if err := l.deleteSnapshots([]int64{off}); err != nil {
				return false, err
			}
			l.snaps = slices.Delete(l.snaps, i, i+1)
			continue
		}
		if err != nil {
			return false, err
		}
		for _, se := range entries {
			if se.entry.txnFirst < 0 && nowMs-se.entry.lastTimestamp >= expiry {
				continue
			}
			l.ps.put(se.pid, se.entry)
		}
		from = max(from, off)
		break
	}
	err := l.replayLocked(from)
	l.publishUnstableLocked()
	return from < leo, err
}

// replayLocked rebuilds the producer state from the batches at or above
// from, and with it the transaction index entries of the markers there:
// each segment's index first loses its entries at or above from, then gets
// them again as the markers are replayed (Kafka's LogSegment.recover does
// the same for a recovered segment).
func (l *Log) replayLocked(from int64) error {
	for i := l.floorSegment(from); i < len(l.segs); i++ {
		s := l.segs[i]
		k, err := s.txn.keepBelow(from)
		if err != nil {
			return err
		}
		touched := k != s.txn.n
		if touched {
			if err := s.txn.cut(k); err != nil {
				return err
			}
			l.mu.Lock()
			s.txn.n = k
			l.mu.Unlock()
		}
		before := s.txn.n
		r, done := newReader(s.log.f, s.size)
		for p := int64(0); p < s.size; {
			h, err := r.header(p)
			if err != nil {
				done()
				return fmt.Errorf("rebuild producer state: %s at %d: %w", s.logPath, p, err)
			}
			if h.BaseOffset >= from && h.ProducerID >= 0 {
				var b []byte
				if h.IsControl() {
					if b, err = r.at(p, h.TotalSize()); err != nil {
						done()
						return fmt.Errorf("rebuild producer state: %s at %d: %w", s.logPath, p, err)
					}
				}
				if err := l.applyBatchLocked(s, h, b); err != nil {
					done()
					return err
				}
			}
			p += int64(h.TotalSize())
		}
		done()
		if touched || s.txn.n != before {
			if err := s.txn.sync(); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropSnapshotsBelowLocked deletes the snapshots below base (the first
// segment's base after segments left the front), except the newest.
func (l *Log) dropSnapshotsBelowLocked(base int64) error {
	if len(l.snaps) == 0 {
		return nil
	}
	newest := l.snaps[len(l.snaps)-1]
	return l.dropSnapshotsLocked(func(off int64) bool { return off < base && off != newest })
}

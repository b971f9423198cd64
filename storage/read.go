package storage

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync/atomic"

	"github.com/kbroker/kbroker/protocol/batch"
)

// ReadResult is a byte range of one segment file holding whole batches:
// File[Pos:Pos+Size]. The range never moves (segments are append-only) and
// the file stays open until Release, even if the segment is rolled, deleted
// by retention, or the whole log is deleted. Only truncation below the
// range (a follower truncating data it had exposed, which the high
// watermark prevents) can shorten it.
type ReadResult struct {
	// File is the segment file for sendfile, nil when the result is empty
	// or the FS does not hand out *os.File values (use ReadAll or Section).
	File *os.File
	Pos  int64
	Size int

	h *readHandle
}

// readHandle is shared by the copies of a ReadResult so that Release drops
// the file reference exactly once.
type readHandle struct {
	f        *segFile
	released atomic.Bool
}

// Release gives the file back. It is idempotent, and a no-op for an empty
// result.
func (r ReadResult) Release() {
	if r.h != nil && r.h.released.CompareAndSwap(false, true) {
		_ = r.h.f.release()
	}
}

// ReadAll reads the range into a new buffer.
func (r ReadResult) ReadAll() ([]byte, error) {
	if r.Size == 0 || r.h == nil {
		return nil, nil
	}
	buf := make([]byte, r.Size)
	n, err := r.h.f.f.ReadAt(buf, r.Pos)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read %d bytes at %d: %w", r.Size, r.Pos, err)
}

// Section returns a reader over the range, for writers that cannot use File.
func (r ReadResult) Section() *io.SectionReader {
	if r.h == nil {
		return io.NewSectionReader(emptyReaderAt{}, 0, 0)
	}
	return io.NewSectionReader(r.h.f.f, r.Pos, int64(r.Size))
}

type emptyReaderAt struct{}

func (emptyReaderAt) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

func osFile(f File) *os.File {
	of, _ := f.(*os.File)
	return of
}

// Read returns whole batches starting with the batch that contains offset (a
// fetch inside a batch gets the whole batch; the client skips what it did not
// ask for). It stops before the first batch whose last offset is >= maxOffset
// (the high watermark or last stable offset the caller passes), as Kafka
// does by translating maxOffset to a file position; and after maxBytes,
// except that the first batch is returned whole even when larger (KIP-74).
// A caller that must not exceed maxBytes for this partition (Kafka only
// grants the exception to the first partition of a fetch) checks Size.
//
// Like Kafka it reads from one segment; when offset lies past a segment's
// last batch it continues with the next segment. offset == LogEndOffset or
// >= maxOffset gives an empty result; offset below LogStartOffset or above
// LogEndOffset gives ErrOffsetOutOfRange. Release a non-empty result.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) (ReadResult, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ReadResult{}, ErrClosed
	}
	start, leo := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > leo {
		return ReadResult{}, fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, leo)
	}
	if offset == leo || offset >= maxOffset {
		return ReadResult{}, nil
	}
	for i := l.floorSegment(offset); i < len(l.segs); i++ {
		res, found, err := l.readSegment(l.segs[i], offset, maxBytes, maxOffset)
		if err != nil || found {
			return res, err
		}
	}
	return ReadResult{}, nil
}

// floorSegment is the index of the last segment whose base offset is <=
// offset, or 0. The caller holds mu.
func (l *Log) floorSegment(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return max(i-1, 0)
}

// readSegment is Read within one segment; found=false means offset lies
// past the segment's batches. The caller holds mu for reading.
func (l *Log) readSegment(s *segment, offset int64, maxBytes int, maxOffset int64) (ReadResult, bool, error) {
	r, done := newReader(s.log.f, s.size)
	defer done()
	start, h, found, err := l.translate(s, offset, r)
	if err != nil {
		return ReadResult{}, false, fmt.Errorf("read %s at offset %d: %w", s.logPath, offset, err)
	}
	if !found {
		return ReadResult{}, false, nil
	}
	if h.LastOffset() >= maxOffset {
		return ReadResult{}, true, nil
	}
	limit := s.size
	if maxOffset < s.end {
		p, _, ok, err := l.translate(s, maxOffset, r)
		if err != nil {
			return ReadResult{}, false, fmt.Errorf("read %s up to offset %d: %w", s.logPath, maxOffset, err)
		}
		if ok {
			limit = p
		}
	}
	end := start + int64(h.TotalSize())
	if want := start + int64(max(maxBytes, 0)); want > end && limit > end {
		if end, err = l.boundary(s, r, end, min(limit, want)); err != nil {
			return ReadResult{}, false, fmt.Errorf("read %s at offset %d: %w", s.logPath, offset, err)
		}
	}
	s.log.acquire()
	return ReadResult{File: osFile(s.log.f), Pos: start, Size: int(end - start), h: &readHandle{f: s.log}}, true, nil
}

// translate finds the first batch whose last offset is >= off: the index
// gives a starting position, batch headers are walked from there. A scan
// that fails from an indexed position is retried from position 0 (and
// logged), so a damaged index costs speed, not correctness. The caller holds
// mu for reading (or is the writer).
func (l *Log) translate(s *segment, off int64, r *batchReader) (int64, batch.Header, bool, error) {
	from, err := s.idx.lookup(off)
	if err != nil || from >= s.size {
		from = 0
	}
	pos, h, found, err := scanFor(r, from, off)
	if from > 0 && (err != nil || (found && pos == from && h.BaseOffset > off)) {
		if s.warnedIndex.CompareAndSwap(false, true) {
			l.logger.Warn("offset index points at a wrong position, scanning the segment", "file", s.idx.path,
				"offset", off, "position", from, "err", err)
		}
		pos, h, found, err = scanFor(r, 0, off)
	}
	return pos, h, found, err
}

func scanFor(r *batchReader, from, off int64) (int64, batch.Header, bool, error) {
	for p := from; p < r.limit; {
		h, err := r.header(p)
		if err != nil {
			return 0, batch.Header{}, false, err
		}
		if h.LastOffset() >= off {
			return p, h, true, nil
		}
		p += int64(h.TotalSize())
	}
	return 0, batch.Header{}, false, nil
}

// boundary returns the last batch boundary <= limitPos, starting from the
// boundary from and jumping ahead with the offset index.
func (l *Log) boundary(s *segment, r *batchReader, from, limitPos int64) (int64, error) {
	p := from
	if ip, err := s.idx.lookupPosition(limitPos); err == nil && ip > p {
		if _, herr := r.header(ip); herr == nil {
			p = ip
		}
	}
	for p < limitPos {
		h, err := r.header(p)
		if err != nil {
			return 0, err
		}
		if p+int64(h.TotalSize()) > limitPos {
			break
		}
		p += int64(h.TotalSize())
	}
	return p, nil
}

// OffsetForTimestamp answers ListOffsets by timestamp: the offset and
// timestamp of the first record (at record level: batches are decompressed)
// at or above the log start offset whose timestamp is >= ts; ok=false when
// there is none. Like Kafka it searches the first segment whose largest
// timestamp reaches ts, starting from the position the time and offset
// indexes give. The caller hides results at or above the high watermark /
// last stable offset, and takes the leader epoch from
// LeaderEpochs().EpochForOffset.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, ok bool, err error) {
	after := int64(math.MinInt64)
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return -1, -1, false, ErrClosed
		}
		logStart := l.logStart.Load()
		var s *segment
		for _, c := range l.segs {
			if c.base > after && c.maxTS >= ts && c.end > logStart {
				s = c
				break
			}
		}
		if s == nil {
			l.mu.RUnlock()
			return -1, -1, false, nil
		}
		startOff := max(logStart, s.base)
		tsOff, err1 := s.tix.lookup(ts)
		pos, err2 := s.idx.lookup(max(tsOff, startOff))
		if err := errors.Join(err1, err2); err != nil {
			l.mu.RUnlock()
			return -1, -1, false, err
		}
		f, size := s.log, s.size
		f.acquire()
		l.mu.RUnlock()

		offset, timestamp, ok, err = searchTimestamp(f.f, pos, size, startOff, func(h batch.Header) bool {
			return h.MaxTimestamp >= ts
		}, func(rec batch.Record) bool { return rec.Timestamp >= ts })
		_ = f.release()
		if err != nil {
			return -1, -1, false, fmt.Errorf("search %s for timestamp %d: %w", s.logPath, ts, err)
		}
		if ok {
			return offset, timestamp, true, nil
		}
		after = s.base
	}
}

// searchTimestamp walks the batches in f from pos up to size and returns
// the first record at or above startOff that match accepts, inside a batch
// that batchMatch accepts.
func searchTimestamp(f io.ReaderAt, pos, size, startOff int64, batchMatch func(batch.Header) bool,
	match func(batch.Record) bool) (int64, int64, bool, error) {
	r, done := newReader(f, size)
	defer done()
	for p := pos; p < size; {
		h, err := r.header(p)
		if err != nil {
			return -1, -1, false, err
		}
		if h.LastOffset() >= startOff && batchMatch(h) {
			full, err := r.at(p, h.TotalSize())
			if err != nil {
				return -1, -1, false, err
			}
			var (
				hit   batch.Record
				found bool
			)
			err = batch.ForEachRecord(full, func(rec batch.Record) bool {
				if rec.Offset >= startOff && match(rec) {
					hit, found = rec, true
					return false
				}
				return true
			})
			if err != nil {
				return -1, -1, false, err
			}
			if found {
				return hit.Offset, hit.Timestamp, true, nil
			}
		}
		p += int64(h.TotalSize())
	}
	return -1, -1, false, nil
}

// MaxTimestamp answers ListOffsets MAX_TIMESTAMP (-3, KIP-734) as Kafka 3.8+
// does: in the segment with the largest timestamp (the first one on a tie),
// the first batch carrying that timestamp, and in it the first record with
// it. It returns (-1, -1) for a log without timestamps. Should reading that
// batch fail, it logs and falls back to the batch's last offset.
func (l *Log) MaxTimestamp() (offset int64, timestamp int64) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return -1, -1
	}
	var s *segment
	for _, c := range l.segs {
		if s == nil || c.maxTS > s.maxTS {
			s = c
		}
	}
	if s == nil || s.maxTS < 0 {
		l.mu.RUnlock()
		return -1, -1
	}
	maxTS, maxOff := s.maxTS, s.maxTSOff
	pos, err := s.idx.lookup(maxOff)
	if err != nil {
		pos = 0
	}
	f, size := s.log, s.size
	f.acquire()
	l.mu.RUnlock()
	defer f.release()

	offset, timestamp, ok, err := searchTimestamp(f.f, pos, size, s.base, func(h batch.Header) bool {
		return h.MaxTimestamp == maxTS
	}, func(rec batch.Record) bool { return rec.Timestamp == maxTS })
	if err != nil || !ok {
		l.logger.Warn("max timestamp lookup fell back to the batch offset", "file", s.logPath, "offset", maxOff, "err", err)
		return maxOff, maxTS
	}
	return offset, timestamp
}

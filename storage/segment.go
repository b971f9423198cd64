package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// segFile is a segment's .log file, shared by the Log and the ReadResults
// pointing into it. The Log holds one reference while the segment is in its
// list and each ReadResult holds another; the file closes with the last
// reference, so a reader can finish a sendfile after a roll, a deletion of
// the segment or of the whole log (POSIX keeps unlinked open files readable).
type segFile struct {
	f    File
	refs atomic.Int64
}

func newSegFile(f File) *segFile {
	s := &segFile{f: f}
	s.refs.Store(1)
	return s
}

func (s *segFile) acquire() { s.refs.Add(1) }

func (s *segFile) release() error {
	if s.refs.Add(-1) == 0 {
		return s.f.Close()
	}
	return nil
}

// segment is one <base>.log file with its two indexes.
type segment struct {
	base    int64
	logPath string
	log     *segFile
	idx     offsetIndex
	tix     timeIndex
	txn     txnIndex // aborted transactions whose markers are in this segment

	// Published state: changed by the writer under Log.mu, read by readers
	// under Log.mu.RLock.
	size     int64 // bytes of whole batches in the .log file
	end      int64 // every offset in the segment is below end; exact for the active segment
	maxTS    int64 // largest batch MaxTimestamp, -1 when none
	maxTSOff int64 // last offset of the first batch carrying maxTS

	// warnedIndex limits the "index points at a wrong position" warning to
	// one per segment; readers may hit it concurrently and repeatedly.
	warnedIndex atomic.Bool

	// Writer-only state.
	created         time.Time
	rollTS          int64 // max timestamp of the first append (Kafka's rollingBasedTimestamp), -1 unknown
	bytesSinceIndex int64
}

func segmentPaths(dir string, base int64) (logPath, idxPath, tixPath string) {
	stem := filepath.Join(dir, segmentName(base))
	return stem + logSuffix, stem + indexSuffix, stem + timeIndexSuffix
}

// txnIndexPath is the .txnindex of the segment at base.
func txnIndexPath(dir string, base int64) string {
	return filepath.Join(dir, segmentName(base)+txnIndexSuffix)
}

// createSegment creates empty files for a new active segment at base,
// replacing leftovers with the same name.
func createSegment(fsys FS, dir string, base int64, cfg LogConfig, now time.Time) (*segment, error) {
	logPath, idxPath, tixPath := segmentPaths(dir, base)
	txnPath := txnIndexPath(dir, base)
	if err := removeIfExists(fsys, txnPath); err != nil {
		return nil, fmt.Errorf("create segment %s: %w", logPath, err)
	}
	s, err := createSegmentFiles(fsys, logPath, idxPath, tixPath, base, cfg, now)
	if err != nil {
		return nil, err
	}
	s.txn.path = txnPath
	return s, nil
}

// createSegmentFiles is createSegment with explicit file names (the cleaner
// writes "<name>.cleaned" files).
func createSegmentFiles(fsys FS, logPath, idxPath, tixPath string, base int64, cfg LogConfig, now time.Time) (*segment, error) {
	var files [3]File
	for i, p := range []string{logPath, idxPath, tixPath} {
		f, err := fsys.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return nil, fmt.Errorf("create segment %s: %w", p, err)
		}
		files[i] = f
	}
	s := &segment{
		base: base, logPath: logPath, log: newSegFile(files[0]),
		idx: offsetIndex{newIndex(files[1], idxPath, base, offsetEntrySize, cfg.SegmentIndexBytes)},
		tix: timeIndex{newIndex(files[2], tixPath, base, timeEntrySize, cfg.SegmentIndexBytes)},
		end: base, maxTS: -1, maxTSOff: base, created: now, rollTS: -1,
	}
	s.idx.reset()
	s.tix.reset()
	return s, nil
}

// openSegment opens the files of an existing segment. missingIndex reports
// an index file that had to be created, so the caller rebuilds it.
func openSegment(fsys FS, dir string, base int64, cfg LogConfig, now time.Time) (s *segment, missingIndex bool, err error) {
	logPath, idxPath, tixPath := segmentPaths(dir, base)
	lf, err := fsys.OpenFile(logPath, os.O_RDWR, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open segment %s: %w", logPath, err)
	}
	st, err := lf.Stat()
	if err != nil {
		lf.Close()
		return nil, false, fmt.Errorf("stat segment %s: %w", logPath, err)
	}
	var idxFiles [2]File
	for i, p := range []string{idxPath, tixPath} {
		f, err := fsys.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			missingIndex = true
			f, err = fsys.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		}
		if err != nil {
			lf.Close()
			for _, g := range idxFiles[:i] {
				g.Close()
			}
			return nil, false, fmt.Errorf("open index %s: %w", p, err)
		}
		idxFiles[i] = f
	}
	s = &segment{
		base: base, logPath: logPath, log: newSegFile(lf),
		idx:  offsetIndex{newIndex(idxFiles[0], idxPath, base, offsetEntrySize, cfg.SegmentIndexBytes)},
		tix:  timeIndex{newIndex(idxFiles[1], tixPath, base, timeEntrySize, cfg.SegmentIndexBytes)},
		size: st.Size(), end: base, maxTS: -1, maxTSOff: base, created: now, rollTS: -1,
		txn: txnIndex{path: txnIndexPath(dir, base)},
	}
	if _, err := s.txn.open(fsys); err != nil {
		_ = s.closeIndexes()
		_ = s.log.release()
		return nil, false, err
	}
	return s, missingIndex, nil
}

// loadIndexes reads both index files into memory. A valid index has at most
// one entry per batch, plus the final time entry.
func (s *segment) loadIndexes() error {
	maxEntries := s.size/batch.HeaderSize + 1
	return errors.Join(s.idx.load(maxEntries*offsetEntrySize), s.tix.load(maxEntries*timeEntrySize))
}

// closeIndexes closes both index files; the .log file is reference counted.
func (s *segment) closeIndexes() error {
	return errors.Join(s.idx.f.Close(), s.tix.f.Close(), s.txn.close())
}

// removeFiles deletes the segment's files from disk.
func (s *segment) removeFiles(fsys FS) error {
	return errors.Join(removeIfExists(fsys, s.logPath), removeIfExists(fsys, s.idx.path), removeIfExists(fsys, s.tix.path),
		removeIfExists(fsys, s.txn.path))
}

// indexBatch applies Kafka's indexing rule to the batch h written at pos:
// an offset entry (and a time entry for a new maximum timestamp) once more
// than interval bytes were appended since the last entry. The caller holds
// Log.mu for writing, or owns the segment exclusively.
func (s *segment) indexBatch(h batch.Header, pos int64, interval int) {
	if h.MaxTimestamp > s.maxTS {
		s.maxTS, s.maxTSOff = h.MaxTimestamp, h.LastOffset()
	}
	if s.bytesSinceIndex > int64(interval) {
		if !s.idx.full() {
			s.idx.add(h.LastOffset(), pos)
		}
		if !s.tix.full() {
			s.tix.maybeAdd(s.maxTS, s.maxTSOff)
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int64(h.TotalSize())
}

// readBufSize is the chunk a batchReader reads at once: a few index
// intervals of batch headers per pread.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// batchReader reads batches of a segment file through a buffer, so walking
// headers costs one pread per chunk rather than one per batch.
type batchReader struct {
	f     io.ReaderAt
	limit int64 // bytes of the file that may be read
	buf   []byte
	start int64 // file position of buf[0]
	n     int   // valid bytes in buf
}

// errTorn marks bytes that do not form a whole, valid batch.
var errTorn = errors.New("storage: torn or invalid batch")

// at returns n bytes at pos, refilling the buffer when needed. It never
// allocates more than the file holds, whatever n a corrupt length claims.
func (r *batchReader) at(pos int64, n int) ([]byte, error) {
	if pos < 0 || n < 0 || pos+int64(n) > r.limit {
		return nil, fmt.Errorf("%w: %d bytes at position %d beyond %d", errTorn, n, pos, r.limit)
	}
	if pos >= r.start && pos+int64(n) <= r.start+int64(r.n) {
		off := int(pos - r.start)
		return r.buf[off : off+n], nil
	}
	want := int(min(int64(max(n, cap(r.buf))), r.limit-pos))
	if want > cap(r.buf) {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:cap(r.buf)]
	got, err := r.f.ReadAt(r.buf[:want], pos)
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.n = 0
		return nil, fmt.Errorf("read %d bytes at position %d: %w", n, pos, err)
	}
	r.start, r.n = pos, got
	return r.buf[:n], nil
}

// header parses the batch header at pos and checks that the whole batch
// lies within the limit.
func (r *batchReader) header(pos int64) (batch.Header, error) {
	if r.limit-pos < batch.HeaderSize {
		return batch.Header{}, fmt.Errorf("%w: %d bytes left at position %d", errTorn, r.limit-pos, pos)
	}
	b, err := r.at(pos, batch.HeaderSize)
	if err != nil {
		return batch.Header{}, err
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return batch.Header{}, fmt.Errorf("%w: position %d: %v", errTorn, pos, err)
	}
	if int64(h.TotalSize()) > r.limit-pos || h.LastOffsetDelta < 0 {
		return batch.Header{}, fmt.Errorf("%w: batch of %d bytes (last offset delta %d) at position %d, %d bytes left",
			errTorn, h.TotalSize(), h.LastOffsetDelta, pos, r.limit-pos)
	}
	return h, nil
}

// newReader returns a batchReader over the first limit bytes of f with a
// pooled buffer; call done when finished.
func newReader(f io.ReaderAt, limit int64) (*batchReader, func()) {
	bp := readBufs.Get().(*[]byte)
	r := &batchReader{f: f, limit: limit, buf: *bp}
	return r, func() {
		if cap(r.buf) == readBufSize {
			*bp = r.buf
		}
		readBufs.Put(bp)
	}
}

// recoverResult is what recovering a segment found.
type recoverResult struct {
	epochs    []EpochEntry // leader epoch starts seen, for the epoch cache
	truncated int64        // bytes cut from the tail
}

// recoverSegment re-reads s from position 0, checking every batch (header,
// length, CRC, offsets increasing and inside the segment's int32 range),
// rebuilds both indexes in memory and writes them out, and truncates the
// file at the first invalid batch with one warning. minOffset is the lowest
// base offset the first batch may have. latestEpoch is the epoch cache's
// newest epoch: later epochs stamped on batches are reported.
func (l *Log) recoverSegment(s *segment, minOffset int64, latestEpoch int32) (recoverResult, error) {
	var res recoverResult
	st, err := s.log.f.Stat()
	if err != nil {
		return res, fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	fileSize := st.Size()
	s.idx.reset()
	s.tix.reset()
	s.maxTS, s.maxTSOff, s.bytesSinceIndex, s.rollTS = -1, s.base, 0, -1
	r := &batchReader{f: s.log.f, limit: fileSize, buf: make([]byte, 1<<20)}
	next := max(minOffset, s.base)
	var (
		pos       int64
		bad       error
		started   = l.now()
		lastNote  = started
		lastBytes int64
	)
	for pos < fileSize {
		h, err := r.header(pos)
		if err == nil {
			err = checkRecoveredBatch(r, h, pos, s.base, next)
		}
		if err != nil {
			bad = err
			break
		}
		if pos == 0 {
			s.rollTS = h.MaxTimestamp
		}
		s.indexBatch(h, pos, l.cfg.IndexIntervalBytes)
		if h.PartitionLeaderEpoch >= 0 && h.PartitionLeaderEpoch > latestEpoch {
			latestEpoch = h.PartitionLeaderEpoch
			res.epochs = append(res.epochs, EpochEntry{Epoch: h.PartitionLeaderEpoch, StartOffset: h.BaseOffset})
		}
		next = h.NextOffset()
		pos += int64(h.TotalSize())
		if now := l.now(); now.Sub(lastNote) >= 5*time.Second || pos-lastBytes >= 256<<20 {
			l.logger.Info("recovering log segment", "file", s.logPath, "position", pos, "size", fileSize,
				"elapsed", now.Sub(started).Round(time.Millisecond))
			lastNote, lastBytes = now, pos
		}
	}
	if pos < fileSize {
		res.truncated = fileSize - pos
		l.logger.Warn("truncating invalid tail of log segment", "file", s.logPath, "position", pos,
			"offset", next, "bytes", res.truncated, "err", bad)
		if err := s.log.f.Truncate(pos); err != nil {
			return res, fmt.Errorf("truncate %s to %d: %w", s.logPath, pos, err)
		}
		if err := s.log.f.Sync(); err != nil {
			return res, fmt.Errorf("sync %s: %w", s.logPath, err)
		}
	}
	s.size = pos
	s.end = s.base
	if pos > 0 {
		s.end = next
	}
	if err := errors.Join(s.idx.persist(true), s.tix.persist(true)); err != nil {
		return res, err
	}
	return res, nil
}

// checkRecoveredBatch validates one batch found during recovery beyond what
// the header parse checked: its CRC and its offsets.
func checkRecoveredBatch(r *batchReader, h batch.Header, pos, base, minOffset int64) error {
	if h.BaseOffset < minOffset {
		return fmt.Errorf("%w: batch at position %d has base offset %d, expected >= %d", errTorn, pos, h.BaseOffset, minOffset)
	}
	if h.LastOffset()-base > math.MaxInt32 || pos+int64(h.TotalSize()) > math.MaxInt32 {
		return fmt.Errorf("%w: batch at position %d (offset %d) overflows the segment's index range", errTorn, pos, h.BaseOffset)
	}
	full, err := r.at(pos, h.TotalSize())
	if err != nil {
		return err
	}
	if got := batch.CRC(full); got != h.CRC {
		return fmt.Errorf("%w: batch at position %d (offset %d): crc %08x, computed %08x", errTorn, pos, h.BaseOffset, h.CRC, got)
	}
	return nil
}

// loadActive loads the last segment after a clean shutdown: both indexes
// into memory with every entry checked, then the batches after the last
// index entry to find the log end offset. An error means the caller must
// recover the segment instead.
func (l *Log) loadActive(s *segment) error {
	if err := s.loadIndexes(); err != nil {
		return err
	}
	if err := s.idx.check(math.MaxInt64, s.size); err != nil {
		return err
	}
	if err := s.tix.check(math.MaxInt64); err != nil {
		return err
	}
	lastOff, pos, ok, _ := s.idx.last()
	r, done := newReader(s.log.f, s.size)
	defer done()
	next := s.base
	if ok {
		h, err := r.header(pos)
		if err != nil {
			return err
		}
		if h.BaseOffset > lastOff {
			return fmt.Errorf("%w: %s: last entry offset %d, batch at position %d starts at %d", errBadIndex, s.idx.path, lastOff, pos, h.BaseOffset)
		}
		next = h.BaseOffset
	}
	s.maxTS, s.maxTSOff, _ = s.tix.last()
	for p := pos; p < s.size; {
		h, err := r.header(p)
		if err != nil {
			return err
		}
		if h.BaseOffset < next {
			return fmt.Errorf("%w: batch at position %d has base offset %d below %d", errTorn, p, h.BaseOffset, next)
		}
		if h.MaxTimestamp > s.maxTS {
			s.maxTS, s.maxTSOff = h.MaxTimestamp, h.LastOffset()
		}
		next = h.NextOffset()
		p += int64(h.TotalSize())
	}
	s.end = next
	if ok && lastOff >= s.end {
		return fmt.Errorf("%w: %s: entry offset %d beyond log end %d", errBadIndex, s.idx.path, lastOff, s.end)
	}
	if _, off, _ := s.tix.last(); s.tix.n > 0 && off >= s.end {
		return fmt.Errorf("%w: %s: entry offset %d beyond log end %d", errBadIndex, s.tix.path, off, s.end)
	}
	s.bytesSinceIndex = s.size - pos
	if s.size > 0 {
		h, err := r.header(0)
		if err != nil {
			return err
		}
		s.rollTS = h.MaxTimestamp
	}
	return nil
}

// checkSealed sanity-checks the indexes of a sealed segment the way Kafka
// does, cheaply: sizes are whole entries (checked by openSealed), and the
// first and last entries point at real batches inside [base, end).
func checkSealed(s *segment, end int64) error {
	if err := s.idx.openSealed(); err != nil {
		return err
	}
	if err := s.tix.openSealed(); err != nil {
		return err
	}
	r, done := newReader(s.log.f, s.size)
	defer done()
	var buf [timeEntrySize]byte
	prevOff, prevPos := int64(-1), int64(-1)
	for _, i := range []int{0, s.idx.n - 1} {
		if i < 0 || (i == 0 && s.idx.n == 0) {
			break
		}
		e, err := s.idx.entry(i, buf[:])
		if err != nil {
			return err
		}
		rel, p := decodeOffsetEntry(e)
		off := s.base + int64(rel)
		if rel < 0 || off >= end || int64(p) >= s.size || off < prevOff || int64(p) < prevPos {
			return fmt.Errorf("%w: %s entry %d (offset %d, position %d) out of range", errBadIndex, s.idx.path, i, off, p)
		}
		h, err := r.header(int64(p))
		if err != nil {
			return fmt.Errorf("%w: %s entry %d: %v", errBadIndex, s.idx.path, i, err)
		}
		if h.BaseOffset > off || h.BaseOffset < s.base {
			return fmt.Errorf("%w: %s entry %d: offset %d, batch at position %d starts at %d", errBadIndex, s.idx.path, i, off, p, h.BaseOffset)
		}
		prevOff, prevPos = off, int64(p)
	}
	prevTS, prevOff := int64(-1), s.base
	for _, i := range []int{0, s.tix.n - 1} {
		if i < 0 || (i == 0 && s.tix.n == 0) {
			break
		}
		e, err := s.tix.entry(i, buf[:])
		if err != nil {
			return err
		}
		ts, rel := decodeTimeEntry(e)
		off := s.base + int64(rel)
		if ts < prevTS || off < prevOff || off >= end || rel < 0 {
			return fmt.Errorf("%w: %s entry %d (timestamp %d, offset %d) out of range", errBadIndex, s.tix.path, i, ts, off)
		}
		prevTS, prevOff = ts, off
	}
	// A sealed segment always ends its time index with its largest
	// timestamp, and every time entry but that one pairs with an offset
	// entry: an emptied index file fails here.
	if s.size > 0 && s.tix.n == 0 {
		h, err := r.header(0)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errBadIndex, s.logPath, err)
		}
		if h.MaxTimestamp >= 0 {
			return fmt.Errorf("%w: %s is empty but the segment has timestamps", errBadIndex, s.tix.path)
		}
	}
	if s.tix.n > s.idx.n+1 {
		return fmt.Errorf("%w: %s has %d entries but %s %d", errBadIndex, s.idx.path, s.idx.n, s.tix.path, s.tix.n)
	}
	return nil
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

const (
	offsetEntrySize = 8  // relative offset int32, position int32
	timeEntrySize   = 12 // timestamp int64, relative offset int32
)

// index is the shared machinery of the offset and time indexes: fixed-size
// big-endian entries in a file named after the segment.
//
// While its segment is active the index keeps every entry in mem, in the
// on-disk encoding; lookups binary-search mem and new entries are appended
// there and written to the file only at roll, Close, or when recovery or a
// truncation rebuilds them (an unclean shutdown rebuilds the active
// segment's indexes anyway). A sealed segment drops mem and binary-searches
// the file with preads, so memory stays flat however many segments a log
// has. Files are never preallocated: their size is always a whole number of
// entries.
//
// Locking: mem and n change only by the Log's single writer while it holds
// Log.mu for writing; readers use them under Log.mu.RLock. written and
// fileSize belong to the writer alone.
type index struct {
	f          File
	path       string
	base       int64
	entrySize  int
	maxEntries int

	mem []byte // nil when sealed
	n   int

	written  int   // bytes of mem already in the file
	fileSize int64 // current size of the file
}

func newIndex(f File, path string, base int64, entrySize, maxBytes int) *index {
	return &index{f: f, path: path, base: base, entrySize: entrySize, maxEntries: maxBytes / entrySize}
}

func (ix *index) full() bool { return ix.n >= ix.maxEntries }

// entry returns the raw bytes of entry i, from memory or the file.
func (ix *index) entry(i int, buf []byte) ([]byte, error) {
	if ix.mem != nil {
		return ix.mem[i*ix.entrySize : (i+1)*ix.entrySize], nil
	}
	b := buf[:ix.entrySize]
	if _, err := ix.f.ReadAt(b, int64(i*ix.entrySize)); err != nil {
		return nil, fmt.Errorf("read %s entry %d: %w", ix.path, i, err)
	}
	return b, nil
}

// search returns the largest i with key(entry i) <= target, or -1. Keys are
// increasing in every index this package writes.
func (ix *index) search(target int64, key func([]byte) int64) (int, error) {
	var (
		buf  [timeEntrySize]byte
		ferr error
	)
	i := sort.Search(ix.n, func(i int) bool {
		if ferr != nil {
			return true
		}
		e, err := ix.entry(i, buf[:])
		if err != nil {
			ferr = err
			return true
		}
		return key(e) > target
	})
	if ferr != nil {
		return 0, ferr
	}
	return i - 1, nil
}

func (ix *index) appendEntry(e []byte) { ix.mem = append(ix.mem, e...); ix.n++ }

// load reads the whole file into mem, for the active segment. A valid index
// has at most one entry per batch plus the final time entry, so a file above
// maxBytes is rejected before it is read.
func (ix *index) load(maxBytes int64) error {
	st, err := ix.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", ix.path, err)
	}
	size := st.Size()
	if size%int64(ix.entrySize) != 0 {
		return fmt.Errorf("%w: %s size %d is not a multiple of %d", errBadIndex, ix.path, size, ix.entrySize)
	}
	if size > maxBytes {
		return fmt.Errorf("%w: %s is %d bytes", errBadIndex, ix.path, size)
	}
	mem := make([]byte, size)
	if n, err := ix.f.ReadAt(mem, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(mem)) {
		return fmt.Errorf("read %s: %w", ix.path, err)
	}
	ix.mem, ix.n = mem, int(size)/ix.entrySize
	ix.written, ix.fileSize = len(mem), size
	return nil
}

// openSealed sets n from the file size, for a sealed segment.
func (ix *index) openSealed() error {
	st, err := ix.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", ix.path, err)
	}
	if st.Size()%int64(ix.entrySize) != 0 {
		return fmt.Errorf("%w: %s size %d is not a multiple of %d", errBadIndex, ix.path, st.Size(), ix.entrySize)
	}
	ix.mem, ix.n = nil, int(st.Size()/int64(ix.entrySize))
	ix.written, ix.fileSize = int(st.Size()), st.Size()
	return nil
}

// reset empties mem for a rebuild; the next persist rewrites the file from
// the start and trims whatever was there.
func (ix *index) reset() { ix.mem, ix.n, ix.written, ix.fileSize = []byte{}, 0, 0, -1 }

// truncateEntries keeps the first k entries in mem.
func (ix *index) truncateEntries(k int) {
	ix.mem = ix.mem[:k*ix.entrySize]
	ix.n = k
	ix.written = min(ix.written, len(ix.mem))
}

// persist writes the entries not yet in the file, trims the file to the
// entries, and fsyncs it when sync is set. Only the writer calls it.
func (ix *index) persist(sync bool) error {
	if ix.mem == nil {
		return nil
	}
	if ix.written < len(ix.mem) {
		if _, err := ix.f.WriteAt(ix.mem[ix.written:], int64(ix.written)); err != nil {
			return fmt.Errorf("write %s: %w", ix.path, err)
		}
		ix.written = len(ix.mem)
	}
	if ix.fileSize != int64(len(ix.mem)) {
		if err := ix.f.Truncate(int64(len(ix.mem))); err != nil {
			return fmt.Errorf("truncate %s: %w", ix.path, err)
		}
		ix.fileSize = int64(len(ix.mem))
	}
	if sync {
		if err := ix.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", ix.path, err)
		}
	}
	return nil
}

// offsetIndex maps offsets to file positions: entry i says the batch at
// position pos has last offset base+rel. Entries are sparse, one per
// IndexIntervalBytes of log.
type offsetIndex struct{ *index }

func decodeOffsetEntry(e []byte) (rel int32, pos int32) {
	return int32(binary.BigEndian.Uint32(e)), int32(binary.BigEndian.Uint32(e[4:]))
}

// lookup returns the position of the last entry whose offset is <= off, or
// 0: scanning batches from there finds the batch holding off.
func (ix offsetIndex) lookup(off int64) (int64, error) {
	i, err := ix.search(off, func(e []byte) int64 { rel, _ := decodeOffsetEntry(e); return ix.base + int64(rel) })
	if err != nil || i < 0 {
		return 0, err
	}
	var buf [offsetEntrySize]byte
	e, err := ix.entry(i, buf[:])
	if err != nil {
		return 0, err
	}
	_, pos := decodeOffsetEntry(e)
	return int64(pos), nil
}

// lookupPosition returns the largest indexed position <= p, or 0.
func (ix offsetIndex) lookupPosition(p int64) (int64, error) {
	i, err := ix.search(p, func(e []byte) int64 { _, pos := decodeOffsetEntry(e); return int64(pos) })
	if err != nil || i < 0 {
		return 0, err
	}
	var buf [offsetEntrySize]byte
	e, err := ix.entry(i, buf[:])
	if err != nil {
		return 0, err
	}
	_, pos := decodeOffsetEntry(e)
	return int64(pos), nil
}

func (ix offsetIndex) add(lastOffset, pos int64) {
	var e [offsetEntrySize]byte
	binary.BigEndian.PutUint32(e[:], uint32(lastOffset-ix.base))
	binary.BigEndian.PutUint32(e[4:], uint32(pos))
	ix.appendEntry(e[:])
}

// last returns the last entry, ok=false when empty.
func (ix offsetIndex) last() (off, pos int64, ok bool, err error) {
	if ix.n == 0 {
		return 0, 0, false, nil
	}
	var buf [offsetEntrySize]byte
	e, err := ix.entry(ix.n-1, buf[:])
	if err != nil {
		return 0, 0, false, err
	}
	rel, p := decodeOffsetEntry(e)
	return ix.base + int64(rel), int64(p), true, nil
}

// truncateTo drops entries whose offset is >= off (mem must be loaded).
func (ix offsetIndex) truncateTo(off int64) {
	k := sort.Search(ix.n, func(i int) bool {
		rel, _ := decodeOffsetEntry(ix.mem[i*offsetEntrySize:])
		return ix.base+int64(rel) >= off
	})
	ix.truncateEntries(k)
}

// check validates every entry in mem: offsets and positions strictly
// increasing, offsets inside [base, end) and positions below size.
func (ix offsetIndex) check(end, size int64) error {
	prevOff, prevPos := int64(-1), int64(-1)
	for i := 0; i < ix.n; i++ {
		rel, pos := decodeOffsetEntry(ix.mem[i*offsetEntrySize:])
		off := ix.base + int64(rel)
		if rel < 0 || off >= end || off <= prevOff || int64(pos) >= size || int64(pos) <= prevPos {
			return fmt.Errorf("%w: %s entry %d (offset %d, position %d) out of order or range", errBadIndex, ix.path, i, off, pos)
		}
		prevOff, prevPos = off, int64(pos)
	}
	return nil
}

// timeIndex maps timestamps to offsets: entry i says that the batches up to
// the one with last offset base+rel hold no timestamp above ts. Timestamps
// are strictly increasing: an entry is only added for a new maximum.
type timeIndex struct{ *index }

func decodeTimeEntry(e []byte) (ts int64, rel int32) {
	return int64(binary.BigEndian.Uint64(e)), int32(binary.BigEndian.Uint32(e[8:]))
}

// lookup returns the offset of the last entry whose timestamp is <= ts, or
// the base offset.
func (ix timeIndex) lookup(ts int64) (int64, error) {
	i, err := ix.search(ts, func(e []byte) int64 { t, _ := decodeTimeEntry(e); return t })
	if err != nil || i < 0 {
		return ix.base, err
	}
	var buf [timeEntrySize]byte
	e, err := ix.entry(i, buf[:])
	if err != nil {
		return ix.base, err
	}
	_, rel := decodeTimeEntry(e)
	return ix.base + int64(rel), nil
}

// last returns the last entry, or (-1, base) when empty.
func (ix timeIndex) last() (ts, off int64, err error) {
	if ix.n == 0 {
		return -1, ix.base, nil
	}
	var buf [timeEntrySize]byte
	e, err := ix.entry(ix.n-1, buf[:])
	if err != nil {
		return -1, ix.base, err
	}
	t, rel := decodeTimeEntry(e)
	return t, ix.base + int64(rel), nil
}

// maybeAdd appends (ts, off) when ts is above the last entry's timestamp
// (mem must be loaded).
func (ix timeIndex) maybeAdd(ts, off int64) {
	lastTS := int64(-1)
	if ix.n > 0 {
		lastTS, _ = decodeTimeEntry(ix.mem[(ix.n-1)*timeEntrySize:])
	}
	if ts <= lastTS {
		return
	}
	var e [timeEntrySize]byte
	binary.BigEndian.PutUint64(e[:], uint64(ts))
	binary.BigEndian.PutUint32(e[8:], uint32(off-ix.base))
	ix.appendEntry(e[:])
}

// truncateTo drops entries whose offset is >= off (mem must be loaded).
func (ix timeIndex) truncateTo(off int64) {
	k := sort.Search(ix.n, func(i int) bool {
		_, rel := decodeTimeEntry(ix.mem[i*timeEntrySize:])
		return ix.base+int64(rel) >= off
	})
	ix.truncateEntries(k)
}

// check validates every entry in mem: timestamps strictly increasing,
// offsets non-decreasing inside [base, end).
func (ix timeIndex) check(end int64) error {
	prevTS, prevOff := int64(-1), ix.base
	for i := 0; i < ix.n; i++ {
		ts, rel := decodeTimeEntry(ix.mem[i*timeEntrySize:])
		off := ix.base + int64(rel)
		if ts <= prevTS || off < prevOff || off >= end {
			return fmt.Errorf("%w: %s entry %d (timestamp %d, offset %d) out of order or range", errBadIndex, ix.path, i, ts, off)
		}
		prevTS, prevOff = ts, off
	}
	return nil
}

// errBadIndex marks an index that failed a sanity check and must be rebuilt.
var errBadIndex = errors.New("storage: bad index")

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// txnIndexSuffix names a segment's index of aborted transactions.
const txnIndexSuffix = ".txnindex"

// txnEntrySize is one .txnindex entry: version int16, producer ID int64,
// first offset int64, last offset int64, last stable offset int64.
const txnEntrySize = 34

// AbortedTxn is one aborted transaction, as Fetch reports it to
// read_committed consumers and as the .txnindex stores it (Kafka's
// AbortedTxn).
type AbortedTxn struct {
	ProducerID int64
	// FirstOffset is the transaction's first data offset; LastOffset the
	// offset of its ABORT marker.
	FirstOffset, LastOffset int64
	// LastStableOffset is the LSO when the transaction ended: no aborted
	// transaction that ends later starts below it.
	LastStableOffset int64
}

func encodeTxnEntry(b []byte, t AbortedTxn) {
	binary.BigEndian.PutUint16(b[0:], 0)
	binary.BigEndian.PutUint64(b[2:], uint64(t.ProducerID))
	binary.BigEndian.PutUint64(b[10:], uint64(t.FirstOffset))
	binary.BigEndian.PutUint64(b[18:], uint64(t.LastOffset))
	binary.BigEndian.PutUint64(b[26:], uint64(t.LastStableOffset))
}

func decodeTxnEntry(b []byte) (AbortedTxn, bool) {
	t := AbortedTxn{
		ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
		FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
		LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
		LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
	}
	ok := binary.BigEndian.Uint16(b) == 0 && t.ProducerID >= 0 && t.FirstOffset >= 0 &&
		t.FirstOffset <= t.LastOffset && t.LastStableOffset >= 0 && t.LastStableOffset <= t.LastOffset+1
	return t, ok
}

// txnIndex is a segment's .txnindex. As in Kafka the file exists only once
// the segment has an entry. Entries are appended in marker order, so their
// last offsets increase. n is published under Log.mu (readers read the
// first n entries with preads); the file is written by the writer only.
type txnIndex struct {
	path string
	f    File // nil while the file does not exist
	n    int
}

// open opens the file if it exists and counts its whole entries, cutting a
// torn tail and anything after the first malformed or out-of-order entry.
func (t *txnIndex) open(fsys FS) (cut bool, err error) {
	f, err := fsys.OpenFile(t.path, os.O_RDWR, 0)
	if isNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", t.path, err)
	}
	t.f = f
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", t.path, err)
	}
	t.n = int(st.Size() / txnEntrySize)
	entries, err := t.read()
	if err != nil {
		return false, err
	}
	valid, prev := 0, int64(-1)
	for _, e := range entries {
		if e.LastOffset < prev {
			break
		}
		valid, prev = valid+1, e.LastOffset
	}
	t.n = valid
	if int64(valid)*txnEntrySize != st.Size() {
		if err := f.Truncate(int64(valid) * txnEntrySize); err != nil {
			return true, fmt.Errorf("truncate %s: %w", t.path, err)
		}
		return true, nil
	}
	return false, nil
}

// read returns the first n entries, stopping at a malformed one. A reader
// holds Log.mu for reading: n is checked before f, which the writer sets
// before it publishes a non-zero n.
func (t *txnIndex) read() ([]AbortedTxn, error) {
	if t.n == 0 || t.f == nil {
		return nil, nil
	}
	return readTxnEntries(t.f, t.n, t.path)
}

// readTxnEntries reads the first n entries of f.
func readTxnEntries(f File, n int, path string) ([]AbortedTxn, error) {
	buf := make([]byte, n*txnEntrySize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := make([]AbortedTxn, 0, n)
	for p := 0; p < len(buf); p += txnEntrySize {
		e, ok := decodeTxnEntry(buf[p:])
		if !ok {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// write stores entry i, creating the file on the first entry. The caller
// publishes the new count.
func (t *txnIndex) write(fsys FS, i int, e AbortedTxn) error {
	if t.f == nil {
		f, err := fsys.OpenFile(t.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", t.path, err)
		}
		t.f = f
	}
	var b [txnEntrySize]byte
	encodeTxnEntry(b[:], e)
	if _, err := t.f.WriteAt(b[:], int64(i)*txnEntrySize); err != nil {
		return fmt.Errorf("write %s: %w", t.path, err)
	}
	return nil
}

// keepBelow returns how many leading entries have a last offset below off
// (Kafka's TransactionIndex.truncateTo keeps those).
func (t *txnIndex) keepBelow(off int64) (int, error) {
	entries, err := t.read()
	if err != nil {
		return 0, err
	}
	k := 0
	for k < len(entries) && entries[k].LastOffset < off {
		k++
	}
	return k, nil
}

// cut shortens the file to k entries. The caller publishes the count.
func (t *txnIndex) cut(k int) error {
	if t.f == nil {
		return nil
	}
	if err := t.f.Truncate(int64(k) * txnEntrySize); err != nil {
		return fmt.Errorf("truncate %s: %w", t.path, err)
	}
	return nil
}

func (t *txnIndex) sync() error {
	if t.f == nil {
		return nil
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", t.path, err)
	}
	return nil
}

func (t *txnIndex) close() error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// buildCleanedTxnIndex writes the entries of the segments a cleaned
// segment replaces, in order, into path and fsyncs it: the cleaner keeps
// every control batch, so every abort stays. It returns an index without a
// file when there are none.
func buildCleanedTxnIndex(fsys FS, path string, group []segInfo) (txnIndex, error) {
	t := txnIndex{path: path}
	var all []AbortedTxn
	for _, si := range group {
		if si.txnN == 0 || si.txnF == nil {
			continue
		}
		es, err := readTxnEntries(si.txnF, si.txnN, si.s.txn.path)
		if err != nil {
			return t, err
		}
		all = append(all, es...)
	}
	if len(all) == 0 {
		return t, nil
	}
	buf := make([]byte, len(all)*txnEntrySize)
	for i, e := range all {
		encodeTxnEntry(buf[i*txnEntrySize:], e)
	}
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return t, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return t, errors.Join(fmt.Errorf("write %s: %w", path, err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return t, errors.Join(fmt.Errorf("sync %s: %w", path, err), f.Close())
	}
	t.f, t.n = f, len(all)
	return t, nil
}

// AbortedTransactions lists the aborted transactions that overlap the
// offsets [startOffset, upperBoundOffset): firstOffset < upper and
// lastOffset >= start, as Kafka's collectAbortedTxns does for a
// read_committed fetch. It reads the .txnindex of the segment holding
// startOffset and of later segments, stopping at the first entry whose last
// stable offset reaches upper (no later abort can start below it).
func (l *Log) AbortedTransactions(startOffset, upperBoundOffset int64) ([]AbortedTxn, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	var out []AbortedTxn
	for i := l.floorSegment(startOffset); i < len(l.segs); i++ {
		t := &l.segs[i].txn
		if t.n == 0 {
			continue
		}
		entries, err := t.read()
		if err != nil {
			return nil, fmt.Errorf("aborted transactions from offset %d: %w", startOffset, err)
		}
		for _, e := range entries {
			if e.LastOffset >= startOffset && e.FirstOffset < upperBoundOffset {
				out = append(out, e)
			}
			if e.LastStableOffset >= upperBoundOffset {
				return out, nil
			}
		}
	}
	return out, nil
}

package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kbroker/kbroker/protocol/batch"
)

// buildCrashed appends n batches to a fresh log in dir, flushes, and
// abandons it without Close, so the active segment's indexes never reach
// the disk. It returns everything appended.
func buildCrashed(t *testing.T, dir string, n int) []byte {
	t.Helper()
	fsys := newTestFS()
	l := openLog(t, dir, testCfg(), true, Options{FS: fsys})
	all := appendN(t, l, n, 3, batch.CodecNone, 0)
	for l.active().size < 1000 { // several batches in the active segment
		all = append(all, appendN(t, l, 1, 3, batch.CodecNone, 0)...)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	crashLog(t, l, fsys)
	return all
}

// lastSegmentFile returns the path of the newest .log file in dir.
func lastSegmentFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s files: %v", suffix, err)
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// batchStarts returns the positions of the batches in a segment file.
func batchStarts(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for p := 0; p < len(b); {
		h, err := batch.ParseHeader(b[p:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		p += h.TotalSize()
	}
	return out
}

func TestRecoverTornTail(t *testing.T) {
	dir := t.TempDir()
	all := buildCrashed(t, dir, 80)
	seg := lastSegmentFile(t, dir, ".log")
	starts := batchStarts(t, seg)
	if len(starts) < 3 {
		t.Fatalf("active segment has %d batches", len(starts))
	}
	cut := starts[len(starts)-1] + 30 // inside the last batch
	if err := os.Truncate(seg, int64(cut)); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	l := openLog(t, dir, testCfg(), false, Options{Logger: newLogger(&logs)})
	want := all[:len(all)-lastBatchLen(t, all)]
	if got := readAll(t, l, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("recovered %d bytes, want %d", len(got), len(want))
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want exactly 1:\n%s", n, logs.String())
	}
	if !bytes.Contains([]byte(logs.String()), []byte(filepath.Base(seg))) {
		t.Fatalf("warning does not name the file:\n%s", logs.String())
	}
	if st, _ := os.Stat(seg); st.Size() != int64(starts[len(starts)-1]) {
		t.Fatalf("segment is %d bytes after recovery, want %d", st.Size(), starts[len(starts)-1])
	}
	checkIndexes(t, l)
	// The log continues from the recovered end.
	if err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1, 0, 5))); err != nil {
		t.Fatal(err)
	}
}

// lastBatchLen returns the size of the last batch in a concatenation.
func lastBatchLen(t *testing.T, all []byte) int {
	t.Helper()
	last := 0
	for p := 0; p < len(all); {
		h, err := batch.ParseHeader(all[p:])
		if err != nil {
			t.Fatal(err)
		}
		last = h.TotalSize()
		p += last
	}
	return last
}

func TestRecoverBadCRC(t *testing.T) {
	dir := t.TempDir()
	all := buildCrashed(t, dir, 80)
	seg := lastSegmentFile(t, dir, ".log")
	starts := batchStarts(t, seg)
	victim := starts[len(starts)-2] // the second-to-last batch goes, and the last with it
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	if _, err := f.ReadAt(one[:], int64(victim+batch.HeaderSize+2)); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x40
	if _, err := f.WriteAt(one[:], int64(victim+batch.HeaderSize+2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(seg)
	dropped := int(st.Size()) - victim

	var logs logBuf
	l := openLog(t, dir, testCfg(), false, Options{Logger: newLogger(&logs)})
	want := all[:len(all)-dropped]
	if got := readAll(t, l, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("recovered %d bytes, want %d", len(got), len(want))
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	h, _ := batch.ParseHeader(all[len(want):])
	if l.LogEndOffset() != h.BaseOffset {
		t.Fatalf("log end %d, want %d", l.LogEndOffset(), h.BaseOffset)
	}
}

func TestRecoverDropsUnsyncedBytes(t *testing.T) {
	dir := t.TempDir()
	fsys := newTestFS()
	cfg := testCfg()
	cfg.FlushIntervalMessages = 9 // fsync every third append of 3 records
	l := openLog(t, dir, cfg, true, Options{FS: fsys})
	all := appendN(t, l, 50, 3, batch.CodecNone, 0)
	crashLog(t, l, fsys)

	l2 := openLog(t, dir, cfg, false, Options{})
	got := readAll(t, l2, 1<<20)
	if !bytes.HasPrefix(all, got) {
		t.Fatal("recovered log is not a prefix of what was appended")
	}
	// 50 appends of 3: fsyncs at offsets 9, 18, ..., 144 (and at every roll).
	if l2.LogEndOffset() < 144 {
		t.Fatalf("log end %d lost synced data", l2.LogEndOffset())
	}
	checkIndexes(t, l2)
}

func TestRebuildIndexes(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	all := appendN(t, l, 100, 3, batch.CodecNone, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	idxFiles, _ := filepath.Glob(filepath.Join(dir, "*.index"))
	tixFiles, _ := filepath.Glob(filepath.Join(dir, "*.timeindex"))
	if len(idxFiles) < 5 {
		t.Fatalf("%d index files", len(idxFiles))
	}
	sort.Strings(idxFiles)
	sort.Strings(tixFiles)
	orig := map[string][]byte{}
	for _, p := range append(append([]string{}, idxFiles...), tixFiles...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		orig[p] = b
	}
	// Damage every kind of index in several segments, active included.
	mustRemove(t, idxFiles[0])
	mustRemove(t, tixFiles[1])
	mustWrite(t, idxFiles[2], []byte{1, 2, 3})                                          // not whole entries
	mustWrite(t, tixFiles[3], nil)                                                      // emptied
	mustWrite(t, idxFiles[len(idxFiles)-1], bytes.Repeat([]byte{0x7f}, 16))             // garbage in the active one
	mustWrite(t, tixFiles[len(tixFiles)-1], append(orig[tixFiles[len(tixFiles)-1]], 9)) // torn active entry

	var logs logBuf
	l2 := openLog(t, dir, testCfg(), true, Options{Logger: newLogger(&logs)})
	if got := readAll(t, l2, 1000); !bytes.Equal(got, all) {
		t.Fatal("reads differ after index rebuild")
	}
	checkIndexes(t, l2)
	if n := logs.count("rebuilding indexes"); n != 5 {
		t.Fatalf("%d rebuild warnings, want one per damaged segment:\n%s", n, logs.String())
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	// Rebuilt offset indexes are what the appends wrote.
	for _, p := range idxFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, orig[p]) {
			t.Fatalf("%s differs after rebuild", filepath.Base(p))
		}
	}
}

func mustRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRestartAfterClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t-0")
	l := openLog(t, dir, testCfg(), true, Options{})
	all := appendN(t, l, 70, 2, batch.CodecLZ4, 1000)
	leo := l.LogEndOffset()
	maxOff, maxTS := l.MaxTimestamp()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := l.Read(0, 10, 10); err == nil {
		t.Fatal("read after close succeeded")
	}
	var logs logBuf
	l2 := openLog(t, dir, testCfg(), true, Options{Logger: newLogger(&logs)})
	if l2.LogEndOffset() != leo || l2.LogStartOffset() != 0 {
		t.Fatalf("log end %d start %d after restart, want %d 0", l2.LogEndOffset(), l2.LogStartOffset(), leo)
	}
	if got := readAll(t, l2, 700); !bytes.Equal(got, all) {
		t.Fatal("contents differ after restart")
	}
	if o, ts := l2.MaxTimestamp(); o != maxOff || ts != maxTS {
		t.Fatalf("MaxTimestamp %d/%d after restart, want %d/%d", o, ts, maxOff, maxTS)
	}
	if n := logs.count("level=WARN"); n != 0 {
		t.Fatalf("clean restart warned:\n%s", logs.String())
	}
	more := appendN(t, l2, 5, 2, batch.CodecNone, 99999)
	if got := readAll(t, l2, 1<<20); !bytes.Equal(got, append(all, more...)) {
		t.Fatal("appends after restart are wrong")
	}
	checkIndexes(t, l2)
}

// TestGarbageIndexOfEmptySegment: a rebuilt index replaces the whole file,
// even when the rebuilt index is empty.
func TestGarbageIndexOfEmptySegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(dir, segmentName(0)+".index")
	mustWrite(t, idx, bytes.Repeat([]byte{1}, 16))
	l2 := openLog(t, dir, testCfg(), true, Options{})
	if st, err := os.Stat(idx); err != nil || st.Size() != 0 {
		t.Fatalf("index of an empty segment: %v, %d bytes", err, st.Size())
	}
	appendN(t, l2, 3, 1, batch.CodecNone, 0)
	if l2.LogEndOffset() != 3 {
		t.Fatalf("log end %d", l2.LogEndOffset())
	}
}

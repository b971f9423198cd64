package storage

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

func TestAppendReadAcrossRolls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "orders-3")
	l := openLog(t, dir, testCfg(), true, Options{})
	var all []byte
	for i := 0; i < 200; i++ {
		b := makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1+i%4, int64(i)*10, 10+i%90))
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if got := len(l.segs); got < 5 {
		t.Fatalf("%d segments, want several rolls", got)
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.size > testCfg().SegmentBytes {
			t.Fatalf("segment %d has %d bytes, above segment.bytes", s.base, s.size)
		}
	}
	for _, maxBytes := range []int{1, 300, 1000, 1 << 20} {
		if got := readAll(t, l, maxBytes); !bytes.Equal(got, all) {
			t.Fatalf("maxBytes %d: read %d bytes, appended %d, contents differ", maxBytes, len(got), len(all))
		}
	}
	// File names are the 20-digit base offsets.
	for _, s := range l.segs {
		if _, err := os.Stat(filepath.Join(dir, segmentName(s.base)+".log")); err != nil {
			t.Fatal(err)
		}
	}
	if l.Size() != int64(len(all)) {
		t.Fatalf("Size %d, want %d", l.Size(), len(all))
	}
}

// readBatches reads at offset and returns the headers of the result.
func readBatches(t *testing.T, l *Log, offset int64, maxBytes int, maxOffset int64) []batch.Header {
	t.Helper()
	res, err := l.Read(offset, maxBytes, maxOffset)
	if err != nil {
		t.Fatalf("read %d: %v", offset, err)
	}
	defer res.Release()
	b, err := res.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := batch.Validate(b, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size > 0 && res.File == nil {
		t.Fatal("OS-backed read without File")
	}
	return hs
}

func baseOffsets(hs []batch.Header) []int64 {
	out := make([]int64, len(hs))
	for i, h := range hs {
		out[i] = h.BaseOffset
	}
	return out
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadSemantics(t *testing.T) {
	l := openLog(t, t.TempDir(), NewLogConfig(), true, Options{})
	var sizes []int
	for i := 0; i < 4; i++ { // batches 0-4, 5-9, 10-14, 15-19
		b := makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(5, 0, 100))
		sizes = append(sizes, len(b))
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		want      []int64
	}{
		{"inside a batch returns the whole batch", 7, 1 << 20, 20, []int64{5, 10, 15}},
		{"high watermark at a boundary", 0, 1 << 20, 10, []int64{0, 5}},
		{"batch straddling the cap is held back", 0, 1 << 20, 7, []int64{0}},
		{"first batch straddling the cap", 5, 1 << 20, 7, nil},
		{"offset at the cap", 10, 1 << 20, 10, nil},
		{"KIP-74: first batch even when larger", 0, 1, 20, []int64{0}},
		{"maxBytes cuts at a batch boundary", 0, sizes[0] + sizes[1] - 1, 20, []int64{0}},
		{"maxBytes exactly two batches", 0, sizes[0] + sizes[1], 20, []int64{0, 5}},
		{"zero maxBytes still returns one batch", 12, 0, 20, []int64{10}},
		{"at log end", 20, 1 << 20, 20, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := baseOffsets(readBatches(t, l, tc.offset, tc.maxBytes, tc.maxOffset)); !equalInts(got, tc.want) {
				t.Fatalf("got batches %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := l.Read(21, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("above log end: %v", err)
	}
	if _, err := l.Read(-1, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("negative: %v", err)
	}
	res, err := l.Read(20, 100, 100)
	if err != nil || res.Size != 0 || res.File != nil {
		t.Fatalf("read at log end: %+v %v", res, err)
	}
	res.Release() // no-op on empty
	if err := l.SetLogStartOffset(10); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(9, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("below log start: %v", err)
	}
}

func TestReadContinuesInNextSegment(t *testing.T) {
	l := openLog(t, t.TempDir(), testCfg(), true, Options{})
	appendN(t, l, 60, 3, batch.CodecNone, 0)
	if len(l.segs) < 3 {
		t.Fatalf("want several segments, got %d", len(l.segs))
	}
	for _, s := range l.segs[1:] {
		hs := readBatches(t, l, s.base, 1<<20, l.LogEndOffset())
		if hs[0].BaseOffset != s.base {
			t.Fatalf("read at segment base %d starts at %d", s.base, hs[0].BaseOffset)
		}
		// One read never spans segments.
		if last := hs[len(hs)-1].NextOffset(); last > s.end {
			t.Fatalf("read from segment %d went past its end %d to %d", s.base, s.end, last)
		}
	}
}

// scanLinear finds the batch holding off by reading the segment from 0.
func scanLinear(t *testing.T, s *segment, off int64) (int64, bool) {
	t.Helper()
	r, done := newReader(s.log.f, s.size)
	defer done()
	pos, _, found, err := scanFor(r, 0, off)
	if err != nil {
		t.Fatal(err)
	}
	return pos, found
}

func checkIndexes(t *testing.T, l *Log) {
	t.Helper()
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		r, done := newReader(s.log.f, s.size)
		var buf [timeEntrySize]byte
		prevTS := int64(-1)
		for i := 0; i < s.idx.n; i++ {
			e, err := s.idx.entry(i, buf[:])
			if err != nil {
				t.Fatal(err)
			}
			rel, pos := decodeOffsetEntry(e)
			h, err := r.header(int64(pos))
			if err != nil {
				t.Fatalf("segment %d entry %d: %v", s.base, i, err)
			}
			if h.LastOffset() != s.base+int64(rel) {
				t.Fatalf("segment %d entry %d: offset %d, batch at %d ends at %d", s.base, i, s.base+int64(rel), pos, h.LastOffset())
			}
			// The lookup of an indexed offset lands exactly on its entry.
			if got, err := s.idx.lookup(s.base + int64(rel)); err != nil || got != int64(pos) {
				t.Fatalf("segment %d: lookup(%d) = %d, %v; want %d", s.base, s.base+int64(rel), got, err, pos)
			}
		}
		for i := 0; i < s.tix.n; i++ {
			e, err := s.tix.entry(i, buf[:])
			if err != nil {
				t.Fatal(err)
			}
			ts, _ := decodeTimeEntry(e)
			if ts <= prevTS {
				t.Fatalf("segment %d time entry %d not increasing", s.base, i)
			}
			prevTS = ts
		}
		for off := s.base; off < s.end; off++ {
			r2, done2 := newReader(s.log.f, s.size)
			pos, _, found, err := l.translate(s, off, r2)
			done2()
			if err != nil {
				t.Fatal(err)
			}
			want, wantFound := scanLinear(t, s, off)
			if pos != want || found != wantFound {
				t.Fatalf("segment %d offset %d: index lookup %d/%v, scan %d/%v", s.base, off, pos, found, want, wantFound)
			}
		}
		done()
	}
}

func TestIndexLookups(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	appendN(t, l, 120, 2, batch.CodecNone, 0)
	n := 0
	for _, s := range l.segs {
		n += s.idx.n
	}
	if n < 20 {
		t.Fatalf("only %d index entries", n)
	}
	checkIndexes(t, l) // active in memory, sealed from files
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, testCfg(), true, Options{})
	checkIndexes(t, l2)
}

func TestRollByTimeAndIndex(t *testing.T) {
	t.Run("record time", func(t *testing.T) {
		cfg := NewLogConfig()
		cfg.SegmentMs = 1000
		l := openLog(t, t.TempDir(), cfg, true, Options{})
		for _, ts := range []int64{5000, 5500, 6000, 6001} {
			if err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1, ts, 5))); err != nil {
				t.Fatal(err)
			}
		}
		// 6000-5000 is not > 1000; 6001-5000 is.
		if len(l.segs) != 2 || l.segs[1].base != 3 {
			t.Fatalf("segments %d, want a roll before offset 3", len(l.segs))
		}
	})
	t.Run("wall clock without timestamps", func(t *testing.T) {
		cfg := NewLogConfig()
		cfg.SegmentMs = 1000
		now := time.Unix(1000, 0)
		l := openLog(t, t.TempDir(), cfg, true, Options{Now: func() time.Time { return now }})
		for i := 0; i < 3; i++ {
			if err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1, -1, 5))); err != nil {
				t.Fatal(err)
			}
			now = now.Add(600 * time.Millisecond)
		}
		if len(l.segs) != 2 || l.segs[1].base != 2 {
			t.Fatalf("segments %d, want a roll before offset 2", len(l.segs))
		}
	})
	t.Run("full index", func(t *testing.T) {
		cfg := NewLogConfig()
		cfg.IndexIntervalBytes = 0
		cfg.SegmentIndexBytes = 24 // 3 offset entries, 2 time entries
		l := openLog(t, t.TempDir(), cfg, true, Options{})
		appendN(t, l, 10, 1, batch.CodecNone, 0)
		if len(l.segs) < 3 {
			t.Fatalf("%d segments, want rolls on a full index", len(l.segs))
		}
		for _, s := range l.segs {
			if s.idx.n > 3 {
				t.Fatalf("segment %d has %d offset entries", s.base, s.idx.n)
			}
		}
	})
}

func TestAppendRejects(t *testing.T) {
	cfg := NewLogConfig()
	cfg.SegmentBytes = 1024
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	if err := l.Append(makeBatch(t, 1, batch.CodecNone, 0, recsAt(1, 0, 5))); !errors.Is(err, ErrInvalidAppend) {
		t.Fatalf("wrong base offset: %v", err)
	}
	gap := append(makeBatch(t, 0, batch.CodecNone, 0, recsAt(2, 0, 5)), makeBatch(t, 3, batch.CodecNone, 0, recsAt(1, 0, 5))...)
	if err := l.Append(gap); !errors.Is(err, ErrInvalidAppend) {
		t.Fatalf("non-contiguous: %v", err)
	}
	b := makeBatch(t, 0, batch.CodecNone, 0, recsAt(1, 0, 5))
	if err := l.Append(b[:len(b)-1]); !errors.Is(err, ErrInvalidAppend) {
		t.Fatalf("truncated: %v", err)
	}
	if err := l.Append(makeBatch(t, 0, batch.CodecNone, 0, recsAt(1, 0, 2000))); !errors.Is(err, ErrRecordBatchTooLarge) {
		t.Fatalf("larger than a segment: %v", err)
	}
	if l.LogEndOffset() != 0 {
		t.Fatalf("rejected appends moved the log end to %d", l.LogEndOffset())
	}
	two := append(makeBatch(t, 0, batch.CodecNone, 0, recsAt(2, 0, 5)), makeBatch(t, 2, batch.CodecGzip, 0, recsAt(3, 0, 5))...)
	if err := l.Append(two); err != nil || l.LogEndOffset() != 5 {
		t.Fatalf("two batches: %v, log end %d", err, l.LogEndOffset())
	}
}

func TestFlushPolicy(t *testing.T) {
	t.Run("messages", func(t *testing.T) {
		fsys := newTestFS()
		cfg := NewLogConfig()
		cfg.FlushIntervalMessages = 5
		l := openLog(t, t.TempDir(), cfg, true, Options{FS: fsys})
		base := fsys.syncCount(".log")
		appendN(t, l, 2, 2, batch.CodecNone, 0) // 4 messages
		if got := fsys.syncCount(".log") - base; got != 0 {
			t.Fatalf("%d syncs before flush.messages", got)
		}
		appendN(t, l, 1, 2, batch.CodecNone, 0) // 6 messages
		if got := fsys.syncCount(".log") - base; got != 1 {
			t.Fatalf("%d syncs after flush.messages, want 1", got)
		}
	})
	t.Run("ms", func(t *testing.T) {
		fsys := newTestFS()
		cfg := NewLogConfig()
		cfg.FlushIntervalMs = 1000
		now := time.Unix(0, 0)
		l := openLog(t, t.TempDir(), cfg, true, Options{FS: fsys, Now: func() time.Time { return now }})
		base := fsys.syncCount(".log")
		appendN(t, l, 1, 1, batch.CodecNone, 0)
		now = now.Add(999 * time.Millisecond)
		if err := l.FlushIfDue(); err != nil {
			t.Fatal(err)
		}
		if got := fsys.syncCount(".log") - base; got != 0 {
			t.Fatalf("%d syncs before flush.ms", got)
		}
		now = now.Add(time.Millisecond)
		if err := l.FlushIfDue(); err != nil {
			t.Fatal(err)
		}
		if got := fsys.syncCount(".log") - base; got != 1 {
			t.Fatalf("%d syncs after flush.ms, want 1", got)
		}
		// Append notices an overdue flush itself.
		appendN(t, l, 1, 1, batch.CodecNone, 0)
		now = now.Add(2 * time.Second)
		appendN(t, l, 1, 1, batch.CodecNone, 0)
		if got := fsys.syncCount(".log") - base; got != 2 {
			t.Fatalf("%d syncs, want 2", got)
		}
	})
}

func TestStickyFailure(t *testing.T) {
	for _, op := range []string{"write", "sync"} {
		t.Run(op, func(t *testing.T) {
			fsys := newTestFS()
			cfg := NewLogConfig()
			cfg.FlushIntervalMessages = 1
			var logs logBuf
			l := openLog(t, t.TempDir(), cfg, true, Options{FS: fsys, Logger: newLogger(&logs)})
			appendN(t, l, 1, 1, batch.CodecNone, 0)
			boom := errors.New("disk on fire")
			fsys.setFault(func(o, path string) error {
				if o == op && filepath.Ext(path) == ".log" {
					return boom
				}
				return nil
			})
			err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1, 0, 5)))
			if !errors.Is(err, ErrLogFailed) || !errors.Is(err, boom) {
				t.Fatalf("append with failing %s: %v", op, err)
			}
			fsys.setFault(nil)
			for i := 0; i < 2; i++ {
				err = l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, recsAt(1, 0, 5)))
				if !errors.Is(err, ErrLogFailed) {
					t.Fatalf("append after the fault cleared: %v", err)
				}
			}
			if err := l.Flush(); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("flush: %v", err)
			}
			if n := logs.count("level=ERROR"); n != 1 {
				t.Fatalf("%d error lines, want 1:\n%s", n, logs.String())
			}
			// Reads keep working.
			if _, err := l.Read(0, 100, math.MaxInt64); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := NewLogConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*LogConfig){
		"segment.bytes small":  func(c *LogConfig) { c.SegmentBytes = 10 },
		"segment.bytes 2GiB":   func(c *LogConfig) { c.SegmentBytes = 1 << 31 },
		"segment.ms":           func(c *LogConfig) { c.SegmentMs = 0 },
		"index.interval.bytes": func(c *LogConfig) { c.IndexIntervalBytes = -1 },
		"segment.index.bytes":  func(c *LogConfig) { c.SegmentIndexBytes = 3 },
		"flush.messages":       func(c *LogConfig) { c.FlushIntervalMessages = 0 },
		"flush.ms":             func(c *LogConfig) { c.FlushIntervalMs = -1 },
	} {
		c := NewLogConfig()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := Open(t.TempDir(), c, true, Options{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open with %s: %v", name, err)
		}
	}
}

// TestAppendDoesNotAllocate: the append path allocates nothing per record
// and, amortised, nothing per batch.
func TestAppendDoesNotAllocate(t *testing.T) {
	cfg := NewLogConfig()
	cfg.IndexIntervalBytes = 1 << 20
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	const n = 200
	batches := make([][]byte, n+1)
	for i := range batches {
		batches[i] = makeBatch(t, int64(i*10), batch.CodecNone, 3, recsAt(10, int64(i), 20))
	}
	if err := l.Append(batches[0]); err != nil {
		t.Fatal(err)
	}
	i := 1
	allocs := testing.AllocsPerRun(n-1, func() {
		if err := l.Append(batches[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per Append", allocs)
	}
}

func BenchmarkAppend(b *testing.B) {
	l := openLog(b, b.TempDir(), NewLogConfig(), true, Options{})
	payload := makeBatch(b, 0, batch.CodecNone, 0, recsAt(10, 0, 100))
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.SetBaseOffset(payload, l.LogEndOffset())
		if err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, b.TempDir(), NewLogConfig(), true, Options{})
	payload := makeBatch(b, 0, batch.CodecNone, 0, recsAt(10, 0, 100))
	for i := 0; i < 10000; i++ {
		batch.SetBaseOffset(payload, l.LogEndOffset())
		if err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := l.Read(int64(i*7919)%leo, 64<<10, leo)
		if err != nil {
			b.Fatal(err)
		}
		res.Release()
	}
}

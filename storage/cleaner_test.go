package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kbroker/kbroker/protocol/batch"
)

// compactCfg is a compacted topic with small segments that cleans whenever
// there is anything dirty and unlinks replaced files at once.
func compactCfg() LogConfig {
	c := testCfg()
	c.SegmentBytes = 1024
	c.Compact, c.Delete = true, false
	c.MinCleanableDirtyRatio = 0
	c.FileDeleteDelayMs = 0
	return c
}

// fillKeys appends n batches of 3 records cycling through nkeys keys, with
// timestamps i*10.
func fillKeys(t *testing.T, l *Log, codec batch.Codec, n, nkeys int) {
	t.Helper()
	for i := 0; i < n; i++ {
		var recs []kv
		for j := 0; j < 3; j++ {
			k := (i*3 + j) % nkeys
			recs = append(recs, kv{key: keyN(k), value: fmt.Sprintf("v%d-%d", i, j), ts: int64(i) * 10})
		}
		appendKV(t, l, codec, -1, recs...)
	}
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	for c := batch.CodecNone; c <= batch.CodecZstd; c++ {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := compactCfg()
			l := openLog(t, dir, cfg, true, Options{})
			fillKeys(t, l, c, 80, 10)
			before, _ := readRecords(t, l)
			activeBase, activeBefore := activeBytes(t, l)
			if activeBase == 0 {
				t.Fatal("test setup: no closed segment")
			}

			st, err := l.Compact(at(1 << 40))
			if err != nil {
				t.Fatal(err)
			}
			if st.Passes != 1 || st.SegmentsCleaned == 0 || st.RecordsRemoved == 0 || st.EndOffset != activeBase {
				t.Fatalf("stats %+v, active base %d", st, activeBase)
			}
			after, hs := readRecords(t, l)
			checkCompacted(t, before, after, activeBase)
			if b2, a2 := activeBytes(t, l); b2 != activeBase || !bytes.Equal(a2, activeBefore) {
				t.Fatal("active segment changed")
			}
			for _, h := range hs {
				if h.Codec() != c {
					t.Fatalf("batch %d has codec %v, want %v", h.BaseOffset, h.Codec(), c)
				}
			}
			// A consumer reading from 0 meets the first record later.
			if after[0].off == 0 || int64(len(after)) >= l.LogEndOffset() {
				t.Fatalf("no offset gaps after compaction: first offset %d, %d records", after[0].off, len(after))
			}

			// The cleaned segments and their indexes survive a clean restart
			// without a rebuild.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var logs logBuf
			l2 := openLog(t, dir, cfg, true, Options{Logger: newLogger(&logs)})
			again, _ := readRecords(t, l2)
			if fmt.Sprint(again) != fmt.Sprint(after) {
				t.Fatal("records changed across restart")
			}
			if n := logs.count("rebuilding"); n != 0 {
				t.Fatalf("indexes rebuilt at restart:\n%s", logs.String())
			}
		})
	}
}

// checkCompacted checks after against before: nothing changed or appeared,
// every key keeps its latest record, below activeBase each key appears once
// (as its last record below activeBase), and above it nothing was removed.
func checkCompacted(t *testing.T, before, after []gotRec, activeBase int64) {
	t.Helper()
	byOff := map[int64]gotRec{}
	for _, r := range before {
		byOff[r.off] = r
	}
	lastClosed := map[string]int64{}
	for _, r := range before {
		if r.off < activeBase {
			lastClosed[r.key] = r.off
		}
	}
	seen := map[string]bool{}
	nActive := 0
	for _, r := range after {
		if byOff[r.off] != r {
			t.Fatalf("record %+v is not the original %+v", r, byOff[r.off])
		}
		if r.off >= activeBase {
			nActive++
			continue
		}
		if seen[r.key] || lastClosed[r.key] != r.off {
			t.Fatalf("record %+v survived; last of its key below %d is %d", r, activeBase, lastClosed[r.key])
		}
		seen[r.key] = true
	}
	for k, off := range lastClosed {
		if !seen[k] && !byOff[off].tomb {
			t.Fatalf("key %s lost its record at %d", k, off)
		}
	}
	wantActive := 0
	for _, r := range before {
		if r.off >= activeBase {
			wantActive++
		}
	}
	if nActive != wantActive {
		t.Fatalf("%d records above %d, want %d", nActive, activeBase, wantActive)
	}
	if fmt.Sprint(latestByKey(after)) != fmt.Sprint(latestByKey(before)) {
		t.Fatal("latest value per key changed")
	}
}

func TestCompactTombstonesAfterDeleteRetention(t *testing.T) {
	cfg := compactCfg()
	cfg.DeleteRetentionMs = 1000
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	appendKV(t, l, batch.CodecLZ4, -1, kv{key: "a", value: "1", ts: 5}, kv{key: "b", value: "1", ts: 6})
	appendKV(t, l, batch.CodecLZ4, -1, kv{key: "c", value: "1", ts: 7}, kv{key: "a", tomb: true, ts: 8})
	fillKeys(t, l, batch.CodecNone, 40, 1000) // unique keys: roll segments past the tombstone
	tombs := func() []gotRec {
		recs, _ := readRecords(t, l)
		var out []gotRec
		for _, r := range recs {
			if r.key == "a" {
				out = append(out, r)
			}
		}
		return out
	}
	if st, err := l.Compact(at(10_000)); err != nil || st.Passes != 1 {
		t.Fatalf("Compact = %+v, %v", st, err)
	}
	got := tombs()
	if len(got) != 1 || !got[0].tomb || got[0].off != 3 || got[0].ts != 8 {
		t.Fatalf("after first clean key a has %+v, want only the tombstone at 3 with timestamp 8", got)
	}
	_, hs := readRecords(t, l)
	if hs[1].BaseOffset != 2 || hs[1].Attributes&attrDeleteHorizon == 0 || hs[1].FirstTimestamp != 11_000 {
		t.Fatalf("tombstone batch header %+v, want delete horizon 11000", hs[1])
	}
	if st, err := l.Compact(at(10_999)); err != nil || st.Passes != 0 || len(tombs()) != 1 {
		t.Fatalf("before the horizon: Compact = %+v, %v; key a %+v", st, err, tombs())
	}
	st, err := l.Compact(at(11_000))
	if err != nil || st.Passes != 1 || len(tombs()) != 0 {
		t.Fatalf("at the horizon: Compact = %+v, %v; key a %+v", st, err, tombs())
	}
	recs, _ := readRecords(t, l)
	m := latestByKey(recs)
	if m["b"].value != "1" || m["c"].value != "1" || m["c"].off != 2 {
		t.Fatalf("other keys damaged: b %+v c %+v", m["b"], m["c"])
	}
	if st, err := l.Compact(at(20_000)); err != nil || st.Passes != 0 {
		t.Fatalf("nothing left to do: Compact = %+v, %v", st, err)
	}
}

func TestCompactMinCompactionLag(t *testing.T) {
	cfg := compactCfg()
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	fillKeys(t, l, batch.CodecNone, 80, 5) // timestamps 0..790
	before, _ := readRecords(t, l)
	activeBase, _ := activeBytes(t, l)

	cfg.MinCompactionLagMs = 1 << 40
	l.SetConfig(cfg)
	if st, err := l.Compact(at(1000)); err != nil || st.Passes != 0 {
		t.Fatalf("all within the lag: Compact = %+v, %v", st, err)
	}
	// Only segments whose largest timestamp is older than now-400 qualify.
	cfg.MinCompactionLagMs = 400
	l.SetConfig(cfg)
	var uncleanable int64 = activeBase
	l.mu.RLock()
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.maxTS > 1000-400 {
			uncleanable = s.base
			break
		}
	}
	l.mu.RUnlock()
	if uncleanable == activeBase || uncleanable == 0 {
		t.Fatalf("test setup: uncleanable %d, active %d", uncleanable, activeBase)
	}
	st, err := l.Compact(at(1000))
	if err != nil || st.Passes != 1 || st.EndOffset != uncleanable {
		t.Fatalf("Compact = %+v, %v; want end %d", st, err, uncleanable)
	}
	after, _ := readRecords(t, l)
	checkCompacted(t, before, after, uncleanable)
}

func TestCompactDirtyRatioAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := compactCfg()
	cfg.MinCleanableDirtyRatio = 0.5
	l := openLog(t, dir, cfg, true, Options{})
	fillKeys(t, l, batch.CodecNone, 100, 150)
	st, err := l.Compact(at(1))
	if err != nil || st.Passes != 1 || st.DirtyRatio != 1 {
		t.Fatalf("first Compact = %+v, %v", st, err)
	}
	end := st.EndOffset
	if st, err := l.Compact(at(1)); err != nil || st.Passes != 0 || st.FirstDirtyOffset != end {
		t.Fatalf("second Compact = %+v, %v; want no pass from %d", st, err, end)
	}
	// Roll a little new data into closed segments: well below the ratio.
	fillKeys(t, l, batch.CodecNone, 10, 150)
	st, err = l.Compact(at(1))
	if err != nil || st.Passes != 0 || st.DirtyRatio <= 0 || st.DirtyRatio >= 0.5 {
		t.Fatalf("small dirty section: Compact = %+v, %v", st, err)
	}
	ratio := st.DirtyRatio
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, cfg, true, Options{})
	st, err = l2.Compact(at(1))
	if err != nil || st.Passes != 0 || st.FirstDirtyOffset != end || st.DirtyRatio != ratio {
		t.Fatalf("after restart: Compact = %+v, %v; want checkpoint %d ratio %v", st, err, end, ratio)
	}
	cfg.MinCleanableDirtyRatio = 0.1
	l2.SetConfig(cfg)
	if st, err := l2.Compact(at(1)); err != nil || st.Passes != 1 || st.FirstDirtyOffset != end {
		t.Fatalf("lower ratio: Compact = %+v, %v", st, err)
	}
	// Not compacting without the policy.
	cfg.Compact = false
	l2.SetConfig(cfg)
	fillKeys(t, l2, batch.CodecNone, 40, 10)
	if st, err := l2.Compact(at(1)); err != nil || st.Passes != 0 {
		t.Fatalf("delete policy: Compact = %+v, %v", st, err)
	}
}

// TestCompactMemoryCap: with a key map of 1 KiB (37 keys), many unique keys
// take many passes, and the result is the same.
func TestCompactMemoryCap(t *testing.T) {
	cfg := compactCfg()
	cfg.CleanerDedupeBufferBytes = 1024
	cfg.SegmentBytes = 4096
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	fillKeys(t, l, batch.CodecSnappy, 140, 200) // every key twice
	before, _ := readRecords(t, l)
	activeBase, _ := activeBytes(t, l)
	st, err := l.Compact(at(1))
	if err != nil {
		t.Fatal(err)
	}
	if st.Passes < 5 || st.MapBytes > 1024 || st.EndOffset != activeBase {
		t.Fatalf("stats %+v: want several passes with a map of at most 1024 bytes, ending at %d", st, activeBase)
	}
	after, _ := readRecords(t, l)
	checkCompacted(t, before, after, activeBase)

	m := newOffsetMap(1024, 1<<40)
	n := 0
	for m.put([]byte(keyN(n)), int64(n)) {
		n++
	}
	if m.bytes() > 1024 || n < 30 {
		t.Fatalf("map of %d bytes held %d keys", m.bytes(), n)
	}
	for i := 0; i < n; i++ {
		if off, ok := m.get([]byte(keyN(i))); !ok || off != int64(i) {
			t.Fatalf("key %d: %d, %v", i, off, ok)
		}
	}
	if _, ok := m.get([]byte(keyN(n))); ok {
		t.Fatal("a key that did not fit was found")
	}
}

// TestCompactProducerBatches: a batch emptied by compaction stays (empty)
// when it is its producer's last data batch, and goes otherwise;
// transactional batches stay whole.
func TestCompactProducerBatches(t *testing.T) {
	cfg := compactCfg()
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	appendKV(t, l, batch.CodecGzip, 7, kv{key: "a", value: "p7", ts: 1}, kv{key: "b", value: "p7", ts: 2}) // 0-1: p7's last
	appendKV(t, l, batch.CodecNone, 8, kv{key: "c", value: "p8-first", ts: 3})                             // 2: p8, superseded
	txn := kvBatch(t, 3, batch.CodecNone, 9, 0x10, []kv{{key: "a", value: "txn", ts: 4}})                  // 3: transactional
	if err := l.Append(txn); err != nil {
		t.Fatal(err)
	}
	appendKV(t, l, batch.CodecNone, 8, kv{key: "c", value: "p8-second", ts: 5})                           // 4
	appendKV(t, l, batch.CodecNone, -1, kv{key: "a", value: "x", ts: 6}, kv{key: "b", value: "x", ts: 7}) // 5-6
	fillKeys(t, l, batch.CodecNone, 40, 1000)
	if _, err := l.Compact(at(1)); err != nil {
		t.Fatal(err)
	}
	recs, hs := readRecords(t, l)
	if hs[0].BaseOffset != 0 || hs[0].LastOffsetDelta != 1 || hs[0].NumRecords != 0 || hs[0].ProducerID != 7 ||
		hs[0].Codec() != batch.CodecNone || hs[0].TotalSize() != batch.HeaderSize {
		t.Fatalf("producer 7's emptied last batch: %+v", hs[0])
	}
	if hs[1].BaseOffset != 3 || !hs[1].IsTransactional() {
		t.Fatalf("second batch %+v, want the transactional one at 3 (p8's first batch dropped)", hs[1])
	}
	res, err := l.Read(3, 1, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := res.ReadAll()
	res.Release()
	if !bytes.Equal(got, txn) {
		t.Fatal("transactional batch was rewritten")
	}
	m := latestByKey(recs)
	if m["a"].value != "x" || m["c"].value != "p8-second" {
		t.Fatalf("latest values %+v %+v", m["a"], m["c"])
	}
}

// TestCompactOffsetForTimestampAndReads checks time lookups and reads at
// every offset against a brute force over the compacted records.
func TestCompactOffsetForTimestampAndReads(t *testing.T) {
	cfg := compactCfg()
	cfg.IndexIntervalBytes = 100
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	fillKeys(t, l, batch.CodecZstd, 120, 40)
	if st, err := l.Compact(at(1)); err != nil || st.Passes != 1 {
		t.Fatalf("Compact = %+v, %v", st, err)
	}
	recs, hs := readRecords(t, l)
	for ts := int64(-1); ts <= recs[len(recs)-1].ts+1; ts += 5 {
		wantOff, wantTS, wantOK := int64(-1), int64(-1), false
		for _, r := range recs {
			if r.ts >= ts {
				wantOff, wantTS, wantOK = r.off, r.ts, true
				break
			}
		}
		off, gotTS, ok, err := l.OffsetForTimestamp(ts)
		if err != nil || ok != wantOK || off != wantOff || gotTS != wantTS {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", ts, off, gotTS, ok, err, wantOff, wantTS, wantOK)
		}
	}
	for off := l.LogStartOffset(); off < l.LogEndOffset(); off++ {
		res, err := l.Read(off, 1, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := res.ReadAll()
		res.Release()
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		var want batch.Header
		for _, w := range hs {
			if w.LastOffset() >= off {
				want = w
				break
			}
		}
		if h.BaseOffset != want.BaseOffset {
			t.Fatalf("read at %d returned batch %d, want %d", off, h.BaseOffset, want.BaseOffset)
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i, s := range l.segs[:len(l.segs)-1] {
		if err := checkSealed(s, l.segs[i+1].base); err != nil {
			t.Fatalf("segment %d: %v", s.base, err)
		}
		if s.size > 4*int64(cfg.IndexIntervalBytes) && s.idx.n == 0 {
			t.Fatalf("segment %d has an empty offset index", s.base)
		}
	}
}

// TestCompactCrashDuringSwap interrupts the swap at each rename, crashes,
// and reopens: the log is either the old or the compacted one, whole.
func TestCompactCrashDuringSwap(t *testing.T) {
	stages := []struct {
		name    string
		match   func(path string) bool
		swapped bool
	}{
		{"before commit", func(p string) bool { return strings.HasSuffix(p, logSuffix+cleanedSuffix) }, false},
		{"old segments half renamed", func(p string) bool { return strings.HasSuffix(p, logSuffix) }, true},
		{"before final rename", func(p string) bool { return strings.HasSuffix(p, logSuffix+swapSuffix) }, true},
	}
	for _, stage := range stages {
		t.Run(stage.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := compactCfg()
			cfg.SegmentBytes = 1 << 20 // one group holds every closed segment
			cfg.FileDeleteDelayMs = 60_000
			fsys := newTestFS()
			l, err := Open(dir, cfg, true, Options{FS: fsys, Logger: newLogger(&logBuf{})})
			if err != nil {
				t.Fatal(err)
			}
			small := cfg
			small.SegmentBytes = 1024
			l.SetConfig(small)
			fillKeys(t, l, batch.CodecNone, 60, 10)
			l.SetConfig(cfg)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			before, _ := readRecords(t, l)
			activeBase, _ := activeBytes(t, l)
			var fired atomic.Bool
			fsys.setFault(func(op, path string) error {
				if op == "rename" && stage.match(path) && fired.CompareAndSwap(false, true) {
					return errors.New("injected rename failure")
				}
				return nil
			})
			if _, err := l.Compact(at(1)); err == nil || !fired.Load() {
				t.Fatalf("Compact did not fail (fired %v): %v", fired.Load(), err)
			}
			fsys.setFault(nil)
			if err := l.Append(kvBatch(t, l.LogEndOffset(), batch.CodecNone, -1, 0, []kv{{key: "x", value: "y"}})); !errors.Is(err, ErrLogFailed) {
				t.Fatalf("append after a failed swap: %v", err)
			}
			crashLog(t, l, fsys)

			l2 := openLog(t, dir, cfg, false, Options{FS: fsys})
			after, _ := readRecords(t, l2)
			if stage.swapped {
				checkCompacted(t, before, after, activeBase)
			} else if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatal("log changed by a swap that never committed")
			}
			for _, suffix := range []string{cleanedSuffix, swapSuffix, deletedSuffix} {
				if left := dirFiles(t, dir, suffix); len(left) != 0 {
					t.Fatalf("leftover %s files: %v", suffix, left)
				}
			}
			// The recovered log compacts to the same result.
			if _, err := l2.Compact(at(1)); err != nil {
				t.Fatal(err)
			}
			again, _ := readRecords(t, l2)
			checkCompacted(t, before, again, activeBase)
		})
	}
}

// TestCompactLeftoverFiles: stray .cleaned/.swap files without a log swap
// are removed at Open and do not change the log.
func TestCompactLeftoverFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := compactCfg()
	l := openLog(t, dir, cfg, true, Options{})
	fillKeys(t, l, batch.CodecNone, 30, 10)
	before, _ := readRecords(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{segmentName(0) + logSuffix + cleanedSuffix, segmentName(0) + indexSuffix + swapSuffix, segmentName(5) + logSuffix + deletedSuffix} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l2 := openLog(t, dir, cfg, true, Options{})
	after, _ := readRecords(t, l2)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("log changed")
	}
	for _, suffix := range []string{cleanedSuffix, swapSuffix, deletedSuffix} {
		if left := dirFiles(t, dir, suffix); len(left) != 0 {
			t.Fatalf("leftover %s files: %v", suffix, left)
		}
	}
}

// TestCompactAbortsOnTruncation: a truncation between the rewrite and the
// swap voids the pass.
func TestCompactAbortsOnTruncation(t *testing.T) {
	cfg := compactCfg()
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	fillKeys(t, l, batch.CodecNone, 60, 10)
	var cut int64
	l.hookBeforeSwap = func() {
		l.hookBeforeSwap = nil
		cut = l.LogEndOffset() - 21 // a batch boundary
		if err := l.TruncateTo(cut); err != nil {
			t.Error(err)
		}
	}
	before, _ := readRecords(t, l)
	st, err := l.Compact(at(1))
	if err != nil || st.SegmentsCleaned != 0 {
		t.Fatalf("Compact = %+v, %v; want an abandoned pass", st, err)
	}
	after, _ := readRecords(t, l)
	if l.LogEndOffset() != cut || fmt.Sprint(after) != fmt.Sprint(before[:len(after)]) {
		t.Fatalf("log after abandoned pass: end %d want %d", l.LogEndOffset(), cut)
	}
	if left := dirFiles(t, l.Dir(), cleanedSuffix); len(left) != 0 {
		t.Fatalf("leftover %v", left)
	}
	// The next run cleans normally.
	activeBase, _ := activeBytes(t, l)
	if st, err := l.Compact(at(1)); err != nil || st.SegmentsCleaned == 0 {
		t.Fatalf("Compact = %+v, %v", st, err)
	}
	again, _ := readRecords(t, l)
	checkCompacted(t, after, again, activeBase)
}

// TestCompactConcurrentWithAppendsAndReads runs the cleaner in a loop while
// a writer appends and readers read; run it with -race.
func TestCompactConcurrentWithAppendsAndReads(t *testing.T) {
	cfg := compactCfg()
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	var (
		done   atomic.Bool
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errs   []error
		passes atomic.Int64
	)
	report := func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !done.Load() {
			st, err := l.Compact(at(1))
			if err != nil {
				report(err)
				return
			}
			passes.Add(int64(st.Passes))
		}
	}()
	go func() {
		defer wg.Done()
		for !done.Load() {
			leo := l.LogEndOffset()
			for off := l.LogStartOffset(); off < leo; {
				res, err := l.Read(off, 4096, leo)
				if err != nil {
					report(err)
					return
				}
				b, err := res.ReadAll()
				res.Release()
				if err != nil || len(b) == 0 {
					report(fmt.Errorf("read at %d: %d bytes, %v", off, len(b), err))
					return
				}
				if err := batch.ForEachRecord(b, func(batch.Record) bool { return true }); err != nil {
					report(err)
					return
				}
				for pos := 0; pos < len(b); {
					h, _ := batch.ParseHeader(b[pos:])
					off = h.NextOffset()
					pos += h.TotalSize()
				}
			}
		}
	}()
	for i := 0; i < 300; i++ {
		appendKV(t, l, batch.Codec(i%3), -1, kv{key: keyN(i % 7), value: fmt.Sprint(i), ts: int64(i)})
	}
	waitFor(t, "the cleaner to run", func() bool { return passes.Load() > 3 || len(errs) > 0 })
	done.Store(true)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	recs, _ := readRecords(t, l)
	m := latestByKey(recs)
	for k := 0; k < 7; k++ {
		last := 299 - (299-k)%7
		if m[keyN(k)].value != fmt.Sprint(last) {
			t.Fatalf("key %d: latest %+v, want value %d", k, m[keyN(k)], last)
		}
	}
}

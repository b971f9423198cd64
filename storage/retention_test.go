package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// retentionLog opens a log of small segments and appends n batches, batch
// i with timestamps around i*1000, so each segment has a known largest
// timestamp.
func retentionLog(t *testing.T, dir string, cfg LogConfig, opts Options, n int) *Log {
	t.Helper()
	l := openLog(t, dir, cfg, true, opts)
	for i := 0; i < n; i++ {
		appendKV(t, l, batch.CodecNone, -1, kv{key: keyN(i), value: "v", ts: int64(i) * 1000}, kv{key: keyN(i), value: "w", ts: int64(i)*1000 + 1})
	}
	return l
}

func TestRetentionByTime(t *testing.T) {
	clk := &clock{}
	cfg := testCfg()
	cfg.SegmentBytes = 600
	cfg.RetentionMs = 10_000
	cfg.FileDeleteDelayMs = 5_000
	dir := t.TempDir()
	l := retentionLog(t, dir, cfg, Options{Now: clk.now}, 60)
	if segmentCount(l) < 5 {
		t.Fatalf("want several segments, have %d", segmentCount(l))
	}
	// Expected: sealed segments whose max timestamp < now - 10s, as a prefix.
	now := int64(40_000)
	var want int
	l.mu.RLock()
	for _, s := range l.segs[:len(l.segs)-1] {
		if now-s.maxTS <= cfg.RetentionMs {
			break
		}
		want++
	}
	wantStart := l.segs[want].base
	firstLog := l.segs[0].logPath
	l.mu.RUnlock()
	if want == 0 {
		t.Fatal("test setup: nothing expired")
	}
	n, err := l.ApplyRetention(func() time.Time { clk.ms = now; return clk.now() }())
	if err != nil || n != want {
		t.Fatalf("ApplyRetention = %d, %v; want %d", n, err, want)
	}
	if got := l.LogStartOffset(); got != wantStart {
		t.Fatalf("log start %d, want %d", got, wantStart)
	}
	if _, err := l.Read(wantStart-1, 100, l.LogEndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if !exists(firstLog + deletedSuffix) {
		t.Fatalf("%s should wait as .deleted", firstLog)
	}
	// Not yet due at now+4s, gone at now+5s.
	if _, err := l.ApplyRetention(at(now + 4_999)); err != nil {
		t.Fatal(err)
	}
	if !exists(firstLog + deletedSuffix) {
		t.Fatal(".deleted file removed before file.delete.delay.ms")
	}
	if _, err := l.ApplyRetention(at(now + 5_000)); err != nil {
		t.Fatal(err)
	}
	if exists(firstLog + deletedSuffix) {
		t.Fatalf("%s not removed after file.delete.delay.ms", firstLog+deletedSuffix)
	}
	// Far in the future everything but the active segment goes.
	n, err = l.ApplyRetention(at(1 << 50))
	if err != nil || segmentCount(l) != 1 || n == 0 {
		t.Fatalf("ApplyRetention = %d, %v; %d segments left", n, err, segmentCount(l))
	}
	l.mu.RLock()
	activeBase := l.segs[0].base
	l.mu.RUnlock()
	if l.LogStartOffset() != activeBase {
		t.Fatalf("log start %d, active base %d", l.LogStartOffset(), activeBase)
	}
	if _, err := l.ApplyRetention(at(1<<50 + 5_000)); err != nil {
		t.Fatal(err)
	}
	if left := dirFiles(t, dir, deletedSuffix); len(left) != 0 {
		t.Fatalf(".deleted files remain: %v", left)
	}
	recs, _ := readRecords(t, l)
	if len(recs) == 0 || recs[0].off != activeBase {
		t.Fatalf("active segment data lost: %d records", len(recs))
	}
}

func TestRetentionBySize(t *testing.T) {
	cfg := testCfg()
	cfg.SegmentBytes = 600
	cfg.RetentionMs = -1
	cfg.FileDeleteDelayMs = 0
	l := retentionLog(t, t.TempDir(), cfg, Options{}, 60)
	cfg.RetentionBytes = l.Size() / 2
	l.SetConfig(cfg)
	var sizes []int64
	l.mu.RLock()
	for _, s := range l.segs {
		sizes = append(sizes, s.size)
	}
	l.mu.RUnlock()
	total, want := l.Size(), 0
	for _, sz := range sizes[:len(sizes)-1] {
		if total-sz < cfg.RetentionBytes {
			break
		}
		total -= sz
		want++
	}
	n, err := l.ApplyRetention(at(0))
	if err != nil || n != want || want == 0 {
		t.Fatalf("ApplyRetention = %d, %v; want %d", n, err, want)
	}
	if l.Size() < cfg.RetentionBytes {
		t.Fatalf("size %d fell below retention.bytes %d", l.Size(), cfg.RetentionBytes)
	}
	if n, err := l.ApplyRetention(at(0)); err != nil || n != 0 {
		t.Fatalf("second ApplyRetention = %d, %v", n, err)
	}
	// Without the delete policy nothing goes.
	cfg.Delete, cfg.Compact, cfg.RetentionBytes = false, true, 0
	l.SetConfig(cfg)
	if n, err := l.ApplyRetention(at(0)); err != nil || n != 0 {
		t.Fatalf("compact-only ApplyRetention = %d, %v", n, err)
	}
}

// at is the time ms milliseconds after the epoch.
func at(ms int64) time.Time { return time.UnixMilli(ms) }

func TestRetentionStableOffsetBound(t *testing.T) {
	cfg := testCfg()
	cfg.SegmentBytes = 600
	cfg.RetentionMs = 0
	l := retentionLog(t, t.TempDir(), cfg, Options{}, 40)
	l.mu.RLock()
	bound := l.segs[2].base
	l.mu.RUnlock()
	l.SetStableOffset(bound)
	n, err := l.ApplyRetention(at(1 << 50))
	if err != nil || n != 2 || l.LogStartOffset() != bound {
		t.Fatalf("ApplyRetention = %d, %v, start %d; want 2 segments up to %d", n, err, l.LogStartOffset(), bound)
	}
}

// TestRetentionKeepsOutstandingReads: a ReadResult taken before its
// segment is deleted (and unlinked at once) still reads its bytes.
func TestRetentionKeepsOutstandingReads(t *testing.T) {
	cfg := testCfg()
	cfg.SegmentBytes = 600
	cfg.RetentionMs = 0
	cfg.FileDeleteDelayMs = 0
	dir := t.TempDir()
	l := retentionLog(t, dir, cfg, Options{}, 30)
	res, err := l.Read(0, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	before, err := res.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.ApplyRetention(at(1 << 50)); err != nil || n == 0 {
		t.Fatalf("ApplyRetention = %d, %v", n, err)
	}
	if exists(filepath.Join(dir, segmentName(0)+logSuffix+deletedSuffix)) || exists(filepath.Join(dir, segmentName(0)+logSuffix)) {
		t.Fatal("segment 0 should be unlinked")
	}
	after, err := res.ReadAll()
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("read after deletion: %v, equal %v", err, bytes.Equal(before, after))
	}
}

func TestLogStartOffsetPersists(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "restart", true: "crash"}[crash]
		t.Run(name, func(t *testing.T) {
			cfg := testCfg()
			cfg.SegmentBytes = 600
			cfg.RetentionMs = 0
			dir := t.TempDir()
			fsys := newTestFS()
			l, err := Open(dir, cfg, true, Options{FS: fsys})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 30; i++ {
				appendKV(t, l, batch.CodecNone, -1, kv{key: keyN(i), value: "v", ts: int64(i)}, kv{key: keyN(i), value: "w", ts: int64(i)})
			}
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			// Retention first, then DeleteRecords into the middle of a segment.
			l.SetStableOffset(20)
			if _, err := l.ApplyRetention(at(1 << 50)); err != nil {
				t.Fatal(err)
			}
			l.SetStableOffset(1 << 62)
			mid := l.LogStartOffset() + 3
			if err := l.SetLogStartOffset(mid); err != nil {
				t.Fatal(err)
			}
			leo := l.LogEndOffset()
			if crash {
				crashLog(t, l, fsys)
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, dir, cfg, !crash, Options{FS: fsys})
			if got := l2.LogStartOffset(); got != mid {
				t.Fatalf("log start after %s = %d, want %d", name, got, mid)
			}
			if l2.LogEndOffset() != leo {
				t.Fatalf("log end %d, want %d", l2.LogEndOffset(), leo)
			}
			if _, err := l2.Read(mid-1, 100, leo); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below start: %v", err)
			}
			recs, _ := readRecords(t, l2)
			if len(recs) == 0 || recs[0].off > mid+1 {
				t.Fatalf("records from %v", recs[:1])
			}
			if len(dirFiles(t, dir, deletedSuffix)) != 0 {
				t.Fatalf("leftover .deleted files: %v", dirFiles(t, dir, deletedSuffix))
			}
		})
	}
}

// TestLogStartCheckpointAboveLogEnd: a crash that loses the tail below a
// checkpointed log start leaves an empty log starting at the checkpoint.
func TestLogStartCheckpointAboveLogEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	l := retentionLog(t, dir, cfg, Options{}, 5)
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckpointInts(OSFS{}, filepath.Join(dir, LogStartOffsetCheckpointFile), leo+100); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, cfg, true, Options{})
	if l2.LogStartOffset() != leo+100 || l2.LogEndOffset() != leo+100 {
		t.Fatalf("start %d end %d, want both %d", l2.LogStartOffset(), l2.LogEndOffset(), leo+100)
	}
	if _, err := os.Stat(filepath.Join(dir, segmentName(0)+logSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old segment still there: %v", err)
	}
	// A corrupt checkpoint refuses to open.
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, LogStartOffsetCheckpointFile), []byte("0\nx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, cfg, true, Options{}); !errors.Is(err, ErrCorruptFile) {
		t.Fatalf("open with corrupt checkpoint: %v", err)
	}
}

package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kbroker/kbroker/protocol/batch"
)

// appendEpochs appends one 2-record batch per epoch in epochs.
func appendEpochs(t *testing.T, l *Log, epochs ...int32) []byte {
	t.Helper()
	var all []byte
	for i, e := range epochs {
		b := makeBatch(t, l.LogEndOffset(), batch.CodecNone, e, recsAt(2, int64(i)*10, 60))
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestTruncateTo(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	l := openLog(t, dir, cfg, true, Options{})
	epochs := make([]int32, 60)
	for i := range epochs {
		epochs[i] = int32(1 + i/20) // epochs 1, 2, 3 start at offsets 0, 40, 80
	}
	all := appendEpochs(t, l, epochs...)
	if len(l.segs) < 5 {
		t.Fatalf("%d segments", len(l.segs))
	}
	if got := l.LeaderEpochs().Entries(); len(got) != 3 || got[1] != (EpochEntry{2, 40}) || got[2] != (EpochEntry{3, 80}) {
		t.Fatalf("epochs %v", got)
	}
	// A sealed segment past epoch 2's start; target falls inside a batch,
	// so that batch goes too.
	i := 0
	for l.segs[i].base < 44 {
		i++
	}
	if i >= len(l.segs)-1 {
		t.Fatalf("no sealed segment after offset 44")
	}
	target := l.segs[i].base + 3
	nSegs := i + 1
	doomedFiles := []string{}
	for _, s := range l.segs[i+1:] {
		doomedFiles = append(doomedFiles, s.logPath, s.idx.path, s.tix.path)
	}
	if err := l.TruncateTo(target); err != nil {
		t.Fatal(err)
	}
	wantEnd := target - 1 // batches are 2 records: target-1 starts the straddling batch
	if l.LogEndOffset() != wantEnd {
		t.Fatalf("log end %d, want %d", l.LogEndOffset(), wantEnd)
	}
	if len(l.segs) != nSegs {
		t.Fatalf("%d segments after truncation, want %d", len(l.segs), nSegs)
	}
	for _, p := range doomedFiles {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived truncation: %v", filepath.Base(p), err)
		}
	}
	want := all[:byteLenUpTo(t, all, wantEnd)]
	if got := readAll(t, l, 1<<20); !bytes.Equal(got, want) {
		t.Fatal("contents after truncation differ")
	}
	if got := l.LeaderEpochs().Entries(); len(got) != 2 || got[1] != (EpochEntry{2, 40}) {
		t.Fatalf("epochs after truncation %v", got)
	}
	checkIndexes(t, l)
	// The truncated segment is active again and takes appends.
	more := appendEpochs(t, l, 4, 4)
	want = append(want, more...)
	if got := readAll(t, l, 1<<20); !bytes.Equal(got, want) {
		t.Fatal("contents after appending to a truncated log differ")
	}
	if err := l.TruncateTo(l.LogEndOffset() + 5); err != nil {
		t.Fatal(err)
	}
	// Both a clean and an unclean restart see the same log.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, clean := range []bool{true, false} {
		l2 := openLog(t, dir, cfg, clean, Options{})
		if got := readAll(t, l2, 1<<20); !bytes.Equal(got, want) {
			t.Fatalf("restart (clean=%v) after truncation differs", clean)
		}
		if got := l2.LeaderEpochs().Entries(); len(got) != 3 || got[2].Epoch != 4 {
			t.Fatalf("epochs after restart %v", got)
		}
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// byteLenUpTo returns the byte length of the batches below offset end.
func byteLenUpTo(t *testing.T, all []byte, end int64) int {
	t.Helper()
	p := 0
	for p < len(all) {
		h, err := batch.ParseHeader(all[p:])
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset >= end {
			break
		}
		p += h.TotalSize()
	}
	return p
}

func TestTruncateFully(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	appendEpochs(t, l, 1, 1, 2)
	res, err := l.Read(0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if err := l.TruncateFullyAndStartAt(0); err != nil { // same base name as the old segment
		t.Fatal(err)
	}
	if l.LogStartOffset() != 0 || l.LogEndOffset() != 0 || len(l.LeaderEpochs().Entries()) != 0 {
		t.Fatalf("after full truncation: start %d end %d epochs %v", l.LogStartOffset(), l.LogEndOffset(), l.LeaderEpochs().Entries())
	}
	if b, err := res.ReadAll(); err != nil || len(b) != res.Size {
		t.Fatalf("open read lost its bytes: %v", err)
	}
	if err := l.SetLogStartOffset(1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("log start above log end: %v", err)
	}
	if err := l.TruncateFullyAndStartAt(500); err != nil {
		t.Fatal(err)
	}
	appendEpochs(t, l, 3)
	if l.LogStartOffset() != 500 || l.LogEndOffset() != 502 {
		t.Fatalf("start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	// TruncateTo below the first segment also truncates fully.
	if err := l.TruncateTo(100); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 100 || l.LogEndOffset() != 100 {
		t.Fatalf("start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, testCfg(), true, Options{})
	if l2.LogStartOffset() != 100 || l2.LogEndOffset() != 100 {
		t.Fatalf("after restart: start %d end %d", l2.LogStartOffset(), l2.LogEndOffset())
	}
}

func TestSetLogStartOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	l := openLog(t, dir, cfg, true, Options{})
	appendEpochs(t, l, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
	n := len(l.segs)
	wantFirst := l.segs[2].base
	target := wantFirst + 1
	if err := l.SetLogStartOffset(target); err != nil {
		t.Fatal(err)
	}
	if len(l.segs) != n-2 || l.segs[0].base != wantFirst || l.LogStartOffset() != target {
		t.Fatalf("%d segments (had %d), start %d", len(l.segs), n, l.LogStartOffset())
	}
	if _, err := l.Read(target-1, 100, l.LogEndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v", err)
	}
	hs := readBatches(t, l, target, 1, l.LogEndOffset())
	if hs[0].BaseOffset > target || hs[0].LastOffset() < target {
		t.Fatalf("read at the start got batch %d", hs[0].BaseOffset)
	}
	if got := l.LeaderEpochs().Entries(); got[0].StartOffset != target {
		t.Fatalf("epochs %v not trimmed to the start %d", got, target)
	}
	if err := l.SetLogStartOffset(target - 5); err != nil || l.LogStartOffset() != target {
		t.Fatalf("lowering the start: %v, start %d", err, l.LogStartOffset())
	}
	if err := l.SetLogStartOffset(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if len(l.segs) != 1 {
		t.Fatalf("the active segment must stay alone, have %d", len(l.segs))
	}
}

package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// pBatch encodes a producer's batch of n records (kmsg, independent of the
// code under test) with base offset 0; txn sets the transactional bit.
func pBatch(t testing.TB, pid int64, epoch int16, seq int32, n int, txn bool, ts int64) []byte {
	t.Helper()
	var raw []byte
	for i := 0; i < n; i++ {
		kr := kmsg.Record{OffsetDelta: int32(i), Key: []byte{byte(i)}, Value: []byte("value")}
		kr.Length = int32(len(kr.AppendTo(nil)[1:]))
		raw = kr.AppendTo(raw)
	}
	attrs := int16(0)
	if txn {
		attrs = 0x10
	}
	kb := kmsg.RecordBatch{
		Length: int32(49 + len(raw)), PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts, ProducerID: pid,
		ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: raw,
	}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// nowMs is a batch timestamp that does not make producers expire.
var nowMs = time.Now().UnixMilli()

// leaderAppend appends through AppendAsLeader and fails the test on error.
func leaderAppend(t testing.TB, l *Log, b []byte) AppendInfo {
	t.Helper()
	info, err := l.AppendAsLeader(b, 1, -1)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return info
}

func control(t testing.TB, l *Log, pid int64, epoch int16, commit bool, coordEpoch int32) int64 {
	t.Helper()
	off, err := l.AppendControl(pid, epoch, commit, coordEpoch, 1, time.Now().UnixMilli())
	if err != nil {
		t.Fatalf("marker for %d: %v", pid, err)
	}
	return off
}

func wantDuplicate(t testing.TB, l *Log, b []byte, first int64) {
	t.Helper()
	info := leaderAppend(t, l, b)
	if !info.Duplicate || info.FirstOffset != first {
		t.Fatalf("got %+v, want a duplicate of offset %d", info, first)
	}
}

func TestIdempotentChecksAndDuplicatesAcrossCloseOpen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	var offs []int64
	for i := 0; i < 3; i++ {
		offs = append(offs, leaderAppend(t, l, pBatch(t, 7, 0, int32(i*2), 2, false, nowMs)).FirstOffset)
	}
	wantDuplicate(t, l, pBatch(t, 7, 0, 2, 2, false, nowMs), offs[1])
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snapshotPath(dir, leo)); err != nil {
		t.Fatalf("no snapshot at the log end after Close: %v", err)
	}
	l = openLog(t, dir, testCfg(), true, Options{})
	// A snapshot keeps the last batch per producer, as Kafka's does.
	wantDuplicate(t, l, pBatch(t, 7, 0, 4, 2, false, nowMs), offs[2])
	for _, c := range []struct {
		name    string
		b       []byte
		wantErr error
	}{
		{"gap", pBatch(t, 7, 0, 9, 1, false, nowMs), ErrOutOfOrderSequence},
		{"new epoch not at 0", pBatch(t, 7, 1, 6, 1, false, nowMs), ErrOutOfOrderSequence},
	} {
		if _, err := l.AppendAsLeader(c.b, 1, -1); !errors.Is(err, c.wantErr) {
			t.Fatalf("%s: got %v, want %v", c.name, err, c.wantErr)
		}
	}
	if leaderAppend(t, l, pBatch(t, 7, 0, 6, 1, false, nowMs)).Duplicate {
		t.Fatal("next sequence taken as a duplicate")
	}
	leaderAppend(t, l, pBatch(t, 7, 1, 0, 1, false, nowMs)) // bump the epoch
	if _, err := l.AppendAsLeader(pBatch(t, 7, 0, 7, 1, false, nowMs), 1, -1); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("older epoch: got %v", err)
	}
	// An unknown producer may start anywhere (KIP-360).
	leaderAppend(t, l, pBatch(t, 8, 3, 42, 1, false, nowMs))
	if got := l.LogEndOffset(); got != leo+3 {
		t.Fatalf("log end %d, want %d: a rejected batch was written", got, leo+3)
	}
}

func TestDuplicateDetectionAfterCrash(t *testing.T) {
	dir := t.TempDir()
	fsys := newTestFS()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	cfg.FlushIntervalMessages = 1 // every append durable; only the snapshot at the end is missing
	l := openLog(t, dir, cfg, true, Options{FS: fsys})
	var offs []int64
	activeBase := func() int64 { l.mu.RLock(); defer l.mu.RUnlock(); return l.active().base }
	for i := 0; segmentCount(l) < 3 || l.LogEndOffset()-activeBase() < 4; i++ {
		offs = append(offs, leaderAppend(t, l, pBatch(t, 3, 0, int32(i), 1, false, nowMs)).FirstOffset)
	}
	base, n := activeBase(), len(offs)
	leo := l.LogEndOffset()
	crashLog(t, l, fsys)
	if _, err := os.Stat(snapshotPath(dir, leo)); err == nil {
		t.Fatal("a snapshot at the log end exists before the restart; the test would not rebuild")
	}
	l = openLog(t, dir, cfg, false, Options{FS: fsys})
	if l.LogEndOffset() != leo {
		t.Fatalf("log end %d after crash, want %d", l.LogEndOffset(), leo)
	}
	// The snapshot at the active segment's base holds the batch before it
	// (Kafka keeps one batch per producer in a snapshot); the replay of the
	// active segment adds the ones after it.
	for i := n - 5; i < n; i++ {
		if offs[i] >= base-1 {
			wantDuplicate(t, l, pBatch(t, 3, 0, int32(i), 1, false, nowMs), offs[i])
		}
	}
	if _, err := l.AppendAsLeader(pBatch(t, 3, 0, int32(n+5), 1, false, nowMs), 1, -1); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after crash: %v", err)
	}
	if got := dirFiles(t, dir, snapshotSuffix); len(got) > snapshotsKept {
		t.Fatalf("%d snapshots kept: %v", len(got), got)
	}
}

func TestSnapshotFormatAndCorruptSnapshot(t *testing.T) {
	e := newProducerEntry()
	e.epoch, e.coordinatorEpoch, e.txnFirst, e.lastTimestamp = 4, 9, 120, 5555
	e.addBatch(batchMeta{lastSeq: 11, lastOffset: 130, offsetDelta: 2, timestamp: 5555})
	b := encodeSnapshot(map[int64]*producerEntry{77: &e})
	if len(b) != 10+46 || binary.BigEndian.Uint16(b) != 1 || binary.BigEndian.Uint32(b[6:]) != 1 {
		t.Fatalf("header: % x", b[:10])
	}
	if crc := crc32.Checksum(b[6:], crc32.MakeTable(crc32.Castagnoli)); binary.BigEndian.Uint32(b[2:]) != crc {
		t.Fatal("crc does not cover the bytes after it")
	}
	p := b[10:]
	if binary.BigEndian.Uint64(p) != 77 || binary.BigEndian.Uint16(p[8:]) != 4 || binary.BigEndian.Uint32(p[10:]) != 11 ||
		binary.BigEndian.Uint64(p[14:]) != 130 || binary.BigEndian.Uint32(p[22:]) != 2 || binary.BigEndian.Uint64(p[26:]) != 5555 ||
		binary.BigEndian.Uint32(p[34:]) != 9 || binary.BigEndian.Uint64(p[38:]) != 120 {
		t.Fatalf("entry layout: % x", p)
	}
	got, err := decodeSnapshot(b)
	if err != nil || len(got) != 1 || got[0].pid != 77 || got[0].entry != e {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b[20]++
	if _, err := decodeSnapshot(b); !errors.Is(err, ErrCorruptFile) {
		t.Fatalf("flipped byte: %v", err)
	}

	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	first := leaderAppend(t, l, pBatch(t, 5, 0, 0, 1, false, nowMs)).FirstOffset
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := snapshotPath(dir, leo)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	l = openLog(t, dir, testCfg(), true, Options{Logger: newLogger(&logs)})
	if logs.count("deleting unreadable producer state snapshot") != 1 {
		t.Fatalf("no warning about the corrupt snapshot:\n%s", logs.String())
	}
	// Rebuilt from the log, and a fresh snapshot taken.
	wantDuplicate(t, l, pBatch(t, 5, 0, 0, 1, false, nowMs), first)
	if b, err := os.ReadFile(path); err != nil || string(b) == string(data) {
		t.Fatalf("corrupt snapshot not replaced: %v", err)
	}
}

func TestTransactionsMarkersAndAbortIndex(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	if l.FirstUnstableOffset() != -1 {
		t.Fatalf("empty log: first unstable %d", l.FirstUnstableOffset())
	}
	a0 := leaderAppend(t, l, pBatch(t, 1, 0, 0, 2, true, nowMs)).FirstOffset // A: 0-1
	b0 := leaderAppend(t, l, pBatch(t, 2, 0, 0, 1, true, nowMs)).FirstOffset // B: 2
	leaderAppend(t, l, pBatch(t, 3, 0, 0, 1, false, nowMs))                  // plain: 3
	if got := l.FirstUnstableOffset(); got != a0 {
		t.Fatalf("first unstable %d, want %d", got, a0)
	}
	if _, err := l.AppendAsLeader(pBatch(t, 1, 0, 2, 1, false, nowMs), 1, -1); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("non-transactional batch in a transaction: %v", err)
	}
	bAbort := control(t, l, 2, 0, false, 5) // B aborts while A is open: LSO = A's start
	aCommit := control(t, l, 1, 0, true, 5)
	if got := l.FirstUnstableOffset(); got != a0 {
		t.Fatalf("markers above the high watermark: first unstable %d, want %d", got, a0)
	}
	l.OnHighWatermarkUpdated(l.LogEndOffset())
	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("after both markers: first unstable %d", got)
	}
	c0 := leaderAppend(t, l, pBatch(t, 1, 0, 2, 1, true, nowMs)).FirstOffset // A again
	cAbort := control(t, l, 1, 0, false, 5)
	l.OnHighWatermarkUpdated(l.LogEndOffset())
	leaderAppend(t, l, pBatch(t, 2, 0, 1, 1, true, nowMs)) // B open at the end
	open := l.LogEndOffset() - 1

	want := []AbortedTxn{
		{ProducerID: 2, FirstOffset: b0, LastOffset: bAbort, LastStableOffset: a0},
		{ProducerID: 1, FirstOffset: c0, LastOffset: cAbort, LastStableOffset: cAbort + 1},
	}
	raw, err := os.ReadFile(txnIndexPath(dir, 0))
	if err != nil || len(raw) != 2*34 {
		t.Fatalf(".txnindex: %d bytes, %v", len(raw), err)
	}
	for i, w := range want {
		e := raw[i*34:]
		if binary.BigEndian.Uint16(e) != 0 || int64(binary.BigEndian.Uint64(e[2:])) != w.ProducerID ||
			int64(binary.BigEndian.Uint64(e[10:])) != w.FirstOffset || int64(binary.BigEndian.Uint64(e[18:])) != w.LastOffset ||
			int64(binary.BigEndian.Uint64(e[26:])) != w.LastStableOffset {
			t.Fatalf("entry %d: % x, want %+v", i, e[:34], w)
		}
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range []struct {
			start, upper int64
			want         []AbortedTxn
		}{
			{0, 1, nil},      // B starts at 2
			{0, 3, want[:1]}, // B overlaps; its LSO (0) < 3 so C is looked at too but starts later
			{0, l.LogEndOffset(), want},
			{bAbort + 1, aCommit + 1, nil}, // after B's marker, before C
			{c0, c0 + 1, want[1:]},
		} {
			got, err := l.AbortedTransactions(c.start, c.upper)
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("%s: [%d, %d): %+v, %v; want %+v", stage, c.start, c.upper, got, err, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("%s: [%d, %d): %+v, want %+v", stage, c.start, c.upper, got, c.want)
				}
			}
		}
		if got := l.FirstUnstableOffset(); got != open {
			t.Fatalf("%s: first unstable %d, want %d", stage, got, open)
		}
	}
	check("live")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, testCfg(), true, Options{})
	l.OnHighWatermarkUpdated(l.LogEndOffset())
	check("after restart")

	// Without any snapshot the state and the index are rebuilt from the log.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range dirFiles(t, dir, snapshotSuffix) {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(txnIndexPath(dir, 0), 34); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, testCfg(), false, Options{})
	l.OnHighWatermarkUpdated(l.LogEndOffset())
	check("rebuilt")
	ps := l.ActiveProducers()
	if len(ps) != 3 || ps[0].ProducerID != 1 || ps[0].CoordinatorEpoch != 5 || ps[1].CurrentTxnStartOffset != open ||
		ps[2].LastSequence != 0 || ps[0].CurrentTxnStartOffset != -1 {
		t.Fatalf("active producers: %+v", ps)
	}
}

func TestMarkerFencing(t *testing.T) {
	l := openLog(t, t.TempDir(), testCfg(), true, Options{})
	leaderAppend(t, l, pBatch(t, 1, 2, 0, 1, true, nowMs))
	control(t, l, 1, 2, true, 7)
	leo := l.LogEndOffset()
	if _, err := l.AppendControl(1, 2, false, 6, 1, 0); !errors.Is(err, ErrCoordinatorFenced) {
		t.Fatalf("older coordinator epoch: %v", err)
	}
	if _, err := l.AppendControl(1, 1, false, 7, 1, 0); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("older producer epoch: %v", err)
	}
	if l.LogEndOffset() != leo {
		t.Fatal("a fenced marker was written")
	}
	control(t, l, 1, 3, false, 8) // a newer epoch ends nothing, but moves the producer on
	if ps := l.ActiveProducers(); ps[0].ProducerEpoch != 3 || ps[0].CoordinatorEpoch != 8 {
		t.Fatalf("producer after marker: %+v", ps[0])
	}
	if got, _ := l.AbortedTransactions(0, l.LogEndOffset()); len(got) != 0 {
		t.Fatalf("an abort without data was indexed: %+v", got)
	}
	// The control batch is a valid v2 batch another decoder reads.
	b := controlBatch(9, 1, true, 3, 1234)
	if _, err := batch.Validate(b, 1<<20); err != nil {
		t.Fatal(err)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil || kb.Attributes != 0x30 || kb.ProducerID != 9 || kb.FirstSequence != -1 {
		t.Fatalf("control batch: %+v, %v", kb, err)
	}
	m, ok, err := parseMarker(b)
	if err != nil || !ok || !m.commit || m.coordinatorEpoch != 3 {
		t.Fatalf("marker: %+v %v %v", m, ok, err)
	}
}

func TestProducerExpiration(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{ms: 1_000_000}
	cfg := testCfg()
	cfg.ProducerIDExpirationMs = 10_000
	l := openLog(t, dir, cfg, true, Options{Now: clk.now})
	leaderAppend(t, l, pBatch(t, 1, 0, 0, 1, false, clk.ms))      // idle
	leaderAppend(t, l, pBatch(t, 2, 0, 0, 1, true, clk.ms))       // open transaction
	leaderAppend(t, l, pBatch(t, 3, 0, 0, 1, false, clk.ms+9000)) // recent
	if n := l.RemoveExpiredProducers(time.UnixMilli(clk.ms + 9999)); n != 0 {
		t.Fatalf("expired %d too early", n)
	}
	if n := l.RemoveExpiredProducers(time.UnixMilli(clk.ms + 10_000)); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	ps := l.ActiveProducers()
	if len(ps) != 2 || ps[0].ProducerID != 2 || ps[1].ProducerID != 3 {
		t.Fatalf("left: %+v", ps)
	}
	// An expired producer is unknown: any sequence starts it again.
	leaderAppend(t, l, pBatch(t, 1, 0, 17, 1, false, clk.ms))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Loading a snapshot drops producers already expired.
	clk.ms += 20_000
	l = openLog(t, dir, cfg, true, Options{Now: clk.now})
	if ps := l.ActiveProducers(); len(ps) != 1 || ps[0].ProducerID != 2 {
		t.Fatalf("after load: %+v", ps)
	}
}

func TestTruncationDropsSnapshotsAndTxnEntries(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	l := openLog(t, dir, cfg, true, Options{})
	for i := 0; i < 30; i++ {
		leaderAppend(t, l, pBatch(t, 4, 0, int32(i), 1, false, nowMs))
	}
	cut := l.LogEndOffset()
	leaderAppend(t, l, pBatch(t, 6, 0, 0, 1, true, nowMs))
	abort := control(t, l, 6, 0, false, 1)
	for i := 30; i < 60; i++ {
		leaderAppend(t, l, pBatch(t, 4, 0, int32(i), 1, false, nowMs))
	}
	snaps := dirFiles(t, dir, snapshotSuffix)
	if len(snaps) == 0 {
		t.Fatal("no snapshots taken at roll")
	}
	if got, _ := l.AbortedTransactions(cut, l.LogEndOffset()); len(got) != 1 || got[0].LastOffset != abort {
		t.Fatalf("aborted before truncation: %+v", got)
	}
	if err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	for _, f := range dirFiles(t, dir, snapshotSuffix) {
		if off, _ := parseSegmentName(f, snapshotSuffix); off > cut {
			t.Fatalf("snapshot %s above the truncation point %d survived", f, cut)
		}
	}
	if got, _ := l.AbortedTransactions(0, 1<<40); len(got) != 0 {
		t.Fatalf("aborted after truncation: %+v", got)
	}
	for _, f := range dirFiles(t, dir, txnIndexSuffix) {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() != 0 {
			t.Fatalf("%s keeps entries: %v", f, err)
		}
	}
	// The producer state is the one at the cut: batch 30 is new again, and
	// producer 6 has no open transaction.
	if leaderAppend(t, l, pBatch(t, 4, 0, 30, 1, false, nowMs)).Duplicate {
		t.Fatal("truncated batch still a duplicate")
	}
	if l.FirstUnstableOffset() != -1 {
		t.Fatalf("first unstable %d after truncating the transaction", l.FirstUnstableOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg, true, Options{})
	wantDuplicate(t, l, pBatch(t, 4, 0, 30, 1, false, nowMs), cut)
}

func TestCompactionKeepsTxnIndex(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	cfg.Compact, cfg.Delete = true, false
	cfg.MinCleanableDirtyRatio = 0
	l := openLog(t, dir, cfg, true, Options{})
	first := leaderAppend(t, l, pBatch(t, 6, 0, 0, 1, true, nowMs)).FirstOffset
	abort := control(t, l, 6, 0, false, 1)
	for i := 0; i < 60; i++ {
		appendKV(t, l, batch.CodecNone, -1, kv{key: "k", value: "v", ts: 1000})
	}
	l.OnHighWatermarkUpdated(l.LogEndOffset())
	before := segmentCount(l)
	cfg.SegmentBytes = 1 << 20 // let the cleaner merge segments
	l.SetConfig(cfg)
	st, err := l.Compact(time.UnixMilli(5000))
	if err != nil || st.SegmentsCleaned == 0 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	if segmentCount(l) >= before {
		t.Fatalf("segments %d -> %d: nothing merged", before, segmentCount(l))
	}
	want := AbortedTxn{ProducerID: 6, FirstOffset: first, LastOffset: abort, LastStableOffset: abort + 1}
	got, err := l.AbortedTransactions(0, 10)
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("after compaction: %+v, %v", got, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg, true, Options{})
	if got, _ := l.AbortedTransactions(0, 10); len(got) != 1 || got[0] != want {
		t.Fatalf("after reopen: %+v", got)
	}
}

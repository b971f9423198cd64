package storage

import (
	"math/rand/v2"
	"testing"

	"github.com/kbroker/kbroker/protocol/batch"
)

// tsRecord is what the brute-force oracle knows about one record.
type tsRecord struct{ offset, ts int64 }

// buildTimestampLog appends batches of every codec whose records carry
// shuffled timestamps (not monotonic inside a batch or across batches).
func buildTimestampLog(t *testing.T, l *Log, rng *rand.Rand, n int) []tsRecord {
	t.Helper()
	codecs := []batch.Codec{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd}
	var out []tsRecord
	base := int64(1_000_000)
	for i := 0; i < n; i++ {
		recs := make([]rec, 1+rng.IntN(6))
		for j := range recs {
			recs[j] = rec{ts: base + int64(i)*50 + rng.Int64N(400) - 200, value: []byte("v")}
		}
		off := l.LogEndOffset()
		for j, r := range recs {
			out = append(out, tsRecord{offset: off + int64(j), ts: r.ts})
		}
		if err := l.Append(makeBatch(t, off, codecs[i%len(codecs)], 0, recs)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// oracle returns the first record at or after start whose timestamp is >= ts.
func oracle(recs []tsRecord, ts, start int64) (int64, int64, bool) {
	for _, r := range recs {
		if r.offset >= start && r.ts >= ts {
			return r.offset, r.ts, true
		}
	}
	return -1, -1, false
}

func TestOffsetForTimestamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	recs := buildTimestampLog(t, l, rng, 150)
	if len(l.segs) < 3 {
		t.Fatalf("%d segments", len(l.segs))
	}
	check := func(t *testing.T, l *Log, start int64) {
		t.Helper()
		lo, hi := recs[0].ts-300, recs[len(recs)-1].ts+300
		for ts := lo; ts <= hi; ts += 23 {
			wo, wt, wok := oracle(recs, ts, start)
			o, tt, ok, err := l.OffsetForTimestamp(ts)
			if err != nil {
				t.Fatal(err)
			}
			if o != wo || tt != wt || ok != wok {
				t.Fatalf("ts %d (log start %d): got %d/%d/%v, want %d/%d/%v", ts, start, o, tt, ok, wo, wt, wok)
			}
		}
	}
	check(t, l, 0)
	// Sealed segments answer from their index files after a restart.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, testCfg(), true, Options{})
	check(t, l2, 0)
	mid := recs[len(recs)/2].offset + 1
	if err := l2.SetLogStartOffset(mid); err != nil {
		t.Fatal(err)
	}
	check(t, l2, mid)
}

func TestMaxTimestamp(t *testing.T) {
	l := openLog(t, t.TempDir(), testCfg(), true, Options{})
	if o, ts := l.MaxTimestamp(); o != -1 || ts != -1 {
		t.Fatalf("empty log: %d/%d", o, ts)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	buildTimestampLog(t, l, rng, 120)
	// Plant the maximum twice, in the middle of a compressed batch and later:
	// the first record carrying it wins.
	top := int64(9_000_000)
	planted := l.LogEndOffset() + 2
	if err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecZstd, 0,
		[]rec{{ts: 5}, {ts: 6}, {ts: top}, {ts: 7}, {ts: top}})); err != nil {
		t.Fatal(err)
	}
	buildTimestampLog(t, l, rng, 40)
	if err := l.Append(makeBatch(t, l.LogEndOffset(), batch.CodecNone, 0, []rec{{ts: top}})); err != nil {
		t.Fatal(err)
	}
	if o, ts := l.MaxTimestamp(); o != planted || ts != top {
		t.Fatalf("MaxTimestamp %d/%d, want %d/%d", o, ts, planted, top)
	}

	// A LogAppendTime batch: every record has the batch's time, the first wins.
	l2 := openLog(t, t.TempDir(), testCfg(), true, Options{})
	appendN(t, l2, 3, 2, batch.CodecNone, 0)
	b := makeBatch(t, l2.LogEndOffset(), batch.CodecGzip, 0, recsAt(4, 10, 5))
	batch.SetLogAppendTime(b, 777777)
	want := l2.LogEndOffset()
	if err := l2.Append(b); err != nil {
		t.Fatal(err)
	}
	if o, ts := l2.MaxTimestamp(); o != want || ts != 777777 {
		t.Fatalf("log append time: %d/%d, want %d/777777", o, ts, want)
	}
	if o, ts, ok, err := l2.OffsetForTimestamp(777000); err != nil || !ok || o != want || ts != 777777 {
		t.Fatalf("OffsetForTimestamp on log append time: %d/%d/%v/%v", o, ts, ok, err)
	}
}

package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// kv is one record for kvBatch; a nil value is a tombstone.
type kv struct {
	key, value string
	tomb       bool
	ts         int64
}

// kvBatch encodes a v2 batch with kmsg. pid < 0 means no producer ID; attrs
// adds attribute bits (transactional) to the codec.
func kvBatch(t testing.TB, base int64, codec batch.Codec, pid int64, attrs int16, recs []kv) []byte {
	t.Helper()
	first, maxTS := recs[0].ts, recs[0].ts
	var raw []byte
	for i, r := range recs {
		maxTS = max(maxTS, r.ts)
		kr := kmsg.Record{TimestampDelta64: r.ts - first, OffsetDelta: int32(i), Key: []byte(r.key)}
		if !r.tomb {
			kr.Value = []byte(r.value)
		}
		body := kr.AppendTo(nil)[1:]
		kr.Length = int32(len(body))
		raw = kr.AppendTo(raw)
	}
	section := raw
	if codec != batch.CodecNone {
		var err error
		if section, err = batch.Compress(codec, raw); err != nil {
			t.Fatal(err)
		}
	}
	epoch, seq := int16(-1), int32(-1)
	if pid >= 0 {
		epoch, seq = 0, 0
	}
	kb := kmsg.RecordBatch{
		FirstOffset: base, Length: int32(49 + len(section)), PartitionLeaderEpoch: 0, Magic: 2,
		Attributes: int16(codec) | attrs, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: first,
		MaxTimestamp: maxTS, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq,
		NumRecords: int32(len(recs)), Records: section,
	}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// appendKV appends one batch at the log end.
func appendKV(t testing.TB, l *Log, codec batch.Codec, pid int64, recs ...kv) {
	t.Helper()
	if err := l.Append(kvBatch(t, l.LogEndOffset(), codec, pid, 0, recs)); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// gotRec is a record read back from a log.
type gotRec struct {
	off, ts    int64
	key, value string
	tomb       bool
}

// readRecords reads the whole log as a consumer would and checks the
// structure: whole batches with valid CRCs, batch offsets increasing,
// record offsets increasing and inside their batch.
func readRecords(t testing.TB, l *Log) ([]gotRec, []batch.Header) {
	t.Helper()
	var (
		recs []gotRec
		hs   []batch.Header
		prev = int64(-1)
	)
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		res, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		b, err := res.ReadAll()
		res.Release()
		if err != nil || len(b) == 0 {
			t.Fatalf("read at %d: %d bytes, %v", off, len(b), err)
		}
		for pos := 0; pos < len(b); {
			h, err := batch.ParseHeader(b[pos:])
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			one := b[pos : pos+h.TotalSize()]
			if batch.CRC(one) != h.CRC {
				t.Fatalf("batch %d: bad crc", h.BaseOffset)
			}
			if h.BaseOffset <= prev && len(hs) > 0 {
				t.Fatalf("batch at %d after offset %d", h.BaseOffset, prev)
			}
			prevRec := h.BaseOffset - 1
			if err := batch.ForEachRecord(one, func(r batch.Record) bool {
				if r.Offset <= prevRec || r.Offset > h.LastOffset() || r.Offset <= prev {
					t.Errorf("record offset %d in batch %d-%d after %d", r.Offset, h.BaseOffset, h.LastOffset(), prevRec)
				}
				prevRec = r.Offset
				recs = append(recs, gotRec{off: r.Offset, ts: r.Timestamp, key: string(r.Key), value: string(r.Value), tomb: r.Value == nil})
				return true
			}); err != nil {
				t.Fatalf("batch %d: %v", h.BaseOffset, err)
			}
			hs = append(hs, h)
			prev = h.LastOffset()
			pos += h.TotalSize()
		}
		off = prev + 1
	}
	return recs, hs
}

// latestByKey is the last record of each key.
func latestByKey(recs []gotRec) map[string]gotRec {
	m := map[string]gotRec{}
	for _, r := range recs {
		m[r.key] = r
	}
	return m
}

// clock is a settable fake clock for Options.Now.
type clock struct{ ms int64 }

func (c *clock) now() time.Time { return time.UnixMilli(c.ms) }

// dirFiles lists the names in dir with the given suffix.
func dirFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// segmentCount is the number of segments in the log.
func segmentCount(l *Log) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// activeBytes returns the active segment's base and file content.
func activeBytes(t testing.TB, l *Log) (int64, []byte) {
	t.Helper()
	l.mu.RLock()
	s := l.active()
	base, path := s.base, s.logPath
	l.mu.RUnlock()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return base, b
}

func keyN(i int) string { return fmt.Sprintf("key-%04d", i) }

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

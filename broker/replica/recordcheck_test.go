package replica

import (
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
	"github.com/kbroker/kbroker/storage"
)

// clientRecord is one record of a producer's batch; key nil is a null key.
type clientRecord struct {
	key []byte
	ts  int64
}

// clientBatch builds a producer's batch (base offset 0, no producer ID),
// compressed with codec.
func clientBatch(t *testing.T, codec batch.Codec, recs []clientRecord) []byte {
	t.Helper()
	var raw []byte
	first, maxTS := recs[0].ts, recs[0].ts
	for i, r := range recs {
		kr := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: r.ts - first, Key: r.key, Value: []byte("value")}
		body := kr.AppendTo(nil)[1:]
		kr.Length = int32(len(body))
		raw = kr.AppendTo(raw)
		maxTS = max(maxTS, r.ts)
	}
	section := raw
	if codec != batch.CodecNone {
		var err error
		if section, err = batch.Compress(codec, raw); err != nil {
			t.Fatal(err)
		}
	}
	b := kmsg.RecordBatch{
		Length: int32(49 + len(section)), PartitionLeaderEpoch: -1, Magic: 2, Attributes: int16(codec),
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: first, MaxTimestamp: maxTS,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: section,
	}
	out := b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

func openLeader(t *testing.T, cfg Config) *Partition {
	t.Helper()
	p, err := Open(t.TempDir(), "facts", 0, [16]byte{7}, cfg, false, storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.MakeLeader(0, ReplicaSet{Replicas: []int32{1}, ISR: []int32{1}, MinISR: 1}, 1); err != nil {
		t.Fatal(err)
	}
	return p
}

func topicConfig(compact, logAppendTime bool, before, after int64) Config {
	lc := storage.NewLogConfig()
	lc.Compact = compact
	return Config{Log: lc, MaxBatchBytes: 1 << 20, MinInsyncReplicas: 1, LogAppendTime: logAppendTime,
		TimestampBeforeMaxMs: before, TimestampAfterMaxMs: after}
}

// refusedAt checks that an append failed with a *batch.RecordErrors
// wrapping sentinel, refusing exactly the records at indexes, and wrote
// nothing.
func refusedAt(t *testing.T, p *Partition, res AppendResult, err error, sentinel error, indexes ...int32) {
	t.Helper()
	var re *batch.RecordErrors
	if !errors.As(err, &re) || !errors.Is(err, sentinel) {
		t.Fatalf("append error %v, want a *batch.RecordErrors wrapping %v", err, sentinel)
	}
	var got []int32
	for _, r := range re.Records {
		got = append(got, r.Index)
		if r.Message == "" {
			t.Errorf("record %d refused without a message", r.Index)
		}
	}
	if len(got) != len(indexes) {
		t.Fatalf("refused records %v, want %v", got, indexes)
	}
	for i := range got {
		if got[i] != indexes[i] {
			t.Fatalf("refused records %v, want %v", got, indexes)
		}
	}
	if leo := p.LogEndOffset(); leo != 0 {
		t.Fatalf("log end offset %d after a refused batch, want 0: nothing may be written", leo)
	}
	if res.LogStartOffset != 0 || res.BaseOffset != -1 {
		t.Fatalf("result %+v, want log start offset 0 and base offset -1", res)
	}
}

func TestAppendRefusesKeylessRecordOnCompactedTopic(t *testing.T) {
	now := time.Now().UnixMilli()
	for _, codec := range []batch.Codec{batch.CodecNone, batch.CodecLZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			p := openLeader(t, topicConfig(true, false, math.MaxInt64, math.MaxInt64))
			recs := []clientRecord{{[]byte("a"), now}, {[]byte("b"), now}, {nil, now}, {[]byte{}, now}}
			res, err := p.AppendAsLeader(clientBatch(t, codec, recs))
			refusedAt(t, p, res, err, batch.ErrInvalidRecord, 2)

			// The empty key of record 3 is a key.
			recs[2].key = []byte("c")
			res, err = p.AppendAsLeader(clientBatch(t, codec, recs))
			if err != nil || res.BaseOffset != 0 || p.LogEndOffset() != 4 {
				t.Fatalf("keyed batch: %v, base offset %d, log end %d", err, res.BaseOffset, p.LogEndOffset())
			}
		})
	}
}

func TestAppendRefusesOutOfRangeTimestamps(t *testing.T) {
	now := time.Now().UnixMilli()
	hour := time.Hour.Milliseconds()
	p := openLeader(t, topicConfig(false, false, hour, hour))
	future := []clientRecord{{[]byte("a"), now}, {[]byte("b"), now + 2*hour}}
	res, err := p.AppendAsLeader(clientBatch(t, batch.CodecZstd, future))
	refusedAt(t, p, res, err, batch.ErrInvalidTimestamp, 1)
	past := []clientRecord{{[]byte("a"), now}, {[]byte("b"), now}, {[]byte("c"), now - 2*hour}}
	res, err = p.AppendAsLeader(clientBatch(t, batch.CodecNone, past))
	refusedAt(t, p, res, err, batch.ErrInvalidTimestamp, 2)

	// The same records on a LogAppendTime topic: not checked.
	p.SetConfig(topicConfig(false, true, hour, hour))
	if _, err := p.AppendAsLeader(clientBatch(t, batch.CodecZstd, future)); err != nil {
		t.Fatalf("LogAppendTime topic: %v", err)
	}
	if _, err := p.AppendAsLeader(clientBatch(t, batch.CodecNone, past)); err != nil {
		t.Fatalf("LogAppendTime topic: %v", err)
	}
}

// TestCoordinatorAppendsSkipRecordRules: the coordinators' own batches are
// not the client's; their records always carry keys.
func TestCoordinatorAppendsSkipRecordRules(t *testing.T) {
	p := openLeader(t, topicConfig(true, false, 0, 0))
	now := time.Now().UnixMilli()
	if _, err := p.AppendAsCoordinator(clientBatch(t, batch.CodecNone, []clientRecord{{[]byte("k"), now - 10}})); err != nil {
		t.Fatalf("coordinator append: %v", err)
	}
}

package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchWithKeys builds a producer's batch with one record per key (nil is
// a null key), timestamps ts.
func batchWithKeys(keys [][]byte, ts int64) []byte {
	var records []byte
	for i, k := range keys {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Key = k
		r.Value = []byte("value")
		body := r.AppendTo(nil)[1:]
		r.Length = int32(len(body))
		records = r.AppendTo(records)
	}
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.LastOffsetDelta = int32(len(keys) - 1)
	b.FirstTimestamp, b.MaxTimestamp = ts, ts
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.NumRecords = int32(len(keys))
	b.Records = records
	return sealBatch(b)
}

func produceOne(t *testing.T, cl *kgo.Client, r *kgo.Record) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, r).FirstErr()
}

// TestFranzGoKeylessRecordOnCompactedTopic: franz-go, unmodified, gets
// INVALID_RECORD for a keyless record on a compacted topic; the refusal
// fails that record only, and the client's next (keyed) record to the same
// partition is written at offset 0.
func TestFranzGoKeylessRecordOnCompactedTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "compacted", 1, map[string]string{"cleanup.policy": "compact"})

	err := produceOne(t, cl, &kgo.Record{Topic: "compacted", Value: []byte("no key")})
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record: %v, want INVALID_RECORD", err)
	}
	keyed := &kgo.Record{Topic: "compacted", Key: []byte("k"), Value: []byte("v")}
	if err := produceOne(t, cl, keyed); err != nil {
		t.Fatalf("keyed record after the refusal: %v", err)
	}
	if keyed.Partition != 0 || keyed.Offset != 0 {
		t.Fatalf("keyed record at %d/%d, want partition 0 offset 0 (the refused record must not be written)", keyed.Partition, keyed.Offset)
	}
	if leo := listLatest(t, cl, "compacted", 0); leo != 1 {
		t.Fatalf("log end %d, want 1", leo)
	}
}

// TestFranzGoFutureTimestamp: a record two hours ahead of the broker's
// clock on a topic that allows one hour is refused with INVALID_TIMESTAMP
// (KIP-937); a record at the present time is then written.
func TestFranzGoFutureTimestamp(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "skewed", 1, map[string]string{"message.timestamp.after.max.ms": "3600000"})

	err := produceOne(t, cl, &kgo.Record{Topic: "skewed", Value: []byte("later"), Timestamp: time.Now().Add(2 * time.Hour)})
	if !errors.Is(err, kerr.InvalidTimestamp) {
		t.Fatalf("record 2h in the future: %v, want INVALID_TIMESTAMP", err)
	}
	if err := produceOne(t, cl, &kgo.Record{Topic: "skewed", Value: []byte("now"), Timestamp: time.Now()}); err != nil {
		t.Fatalf("record at the present time: %v", err)
	}
	if leo := listLatest(t, cl, "skewed", 0); leo != 1 {
		t.Fatalf("log end %d, want 1", leo)
	}
}

// TestProduceRecordErrorsOnTheWire: Produce v8+ names the refused records
// (record_errors: batch_index and message) and carries Kafka's
// error_message and the log start offset; before v8 only the code.
func TestProduceRecordErrorsOnTheWire(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "compacted", 1, map[string]string{"cleanup.policy": "compact"})
	createTopic(t, cl, "skewed", 1, map[string]string{"message.timestamp.after.max.ms": "3600000"})
	now := time.Now().UnixMilli()
	keyMessage := "Compacted topic cannot accept message without key in topic partition compacted-0"

	for _, version := range []int16{8, 11} {
		got := produceRaw(t, cl, version, "compacted", 0, batchWithKeys([][]byte{[]byte("a"), []byte(""), nil, []byte("d")}, now))
		if got.ErrorCode != kerr.InvalidRecord.Code {
			t.Fatalf("v%d: %v, want INVALID_RECORD", version, kerr.ErrorForCode(got.ErrorCode))
		}
		if len(got.ErrorRecords) != 1 || got.ErrorRecords[0].RelativeOffset != 2 ||
			got.ErrorRecords[0].ErrorMessage == nil || *got.ErrorRecords[0].ErrorMessage != keyMessage {
			t.Fatalf("v%d: record errors %+v, want batch index 2 with %q", version, got.ErrorRecords, keyMessage)
		}
		if got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, "RecordError(batchIndex=2, message='"+keyMessage+"')") {
			t.Fatalf("v%d: error message %v, want Kafka's naming the record", version, got.ErrorMessage)
		}
		if got.BaseOffset != -1 || got.LogStartOffset != 0 {
			t.Fatalf("v%d: base offset %d, log start offset %d; want -1 and 0", version, got.BaseOffset, got.LogStartOffset)
		}

		got = produceRaw(t, cl, version, "skewed", 0, batchWithKeys([][]byte{nil, nil}, now+2*time.Hour.Milliseconds()))
		if got.ErrorCode != kerr.InvalidTimestamp.Code {
			t.Fatalf("v%d: %v, want INVALID_TIMESTAMP", version, kerr.ErrorForCode(got.ErrorCode))
		}
		if len(got.ErrorRecords) != 2 || got.ErrorRecords[0].RelativeOffset != 0 || got.ErrorRecords[1].RelativeOffset != 1 ||
			got.ErrorRecords[1].ErrorMessage == nil || !strings.Contains(*got.ErrorRecords[1].ErrorMessage, "is out of range") {
			t.Fatalf("v%d: record errors %+v, want both records out of range", version, got.ErrorRecords)
		}
		if got.ErrorMessage == nil || *got.ErrorMessage != "One or more records have been rejected due to invalid timestamp" {
			t.Fatalf("v%d: error message %v", version, got.ErrorMessage)
		}
	}

	got := produceRaw(t, cl, 7, "compacted", 0, batchWithKeys([][]byte{nil}, now))
	if got.ErrorCode != kerr.InvalidRecord.Code || len(got.ErrorRecords) != 0 || got.ErrorMessage != nil {
		t.Fatalf("v7: %v, record errors %+v, message %v; want INVALID_RECORD alone", kerr.ErrorForCode(got.ErrorCode), got.ErrorRecords, got.ErrorMessage)
	}
	for _, topic := range []string{"compacted", "skewed"} {
		if leo := listLatest(t, cl, topic, 0); leo != 0 {
			t.Fatalf("%s: log end %d after refused batches, want 0", topic, leo)
		}
	}
}

package batch

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

const (
	testNow   = int64(1_700_000_000_000)
	hourMs    = int64(3_600_000)
	noBound   = int64(math.MaxInt64)
	testTopic = "orders"
)

// keyed returns n keyed records, timestamps firstTS+i.
func keyed(n int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		recs[i] = testRecord{offsetDelta: int32(i), tsDelta: int64(i), key: []byte{'k', byte('0' + i)}, value: []byte("v")}
	}
	return recs
}

func compacted() RecordRules {
	return RecordRules{Topic: testTopic, Partition: 3, RequireKeys: true, Now: testNow,
		TimestampBeforeMaxMs: noBound, TimestampAfterMaxMs: noBound}
}

func createTime(before, after int64) RecordRules {
	return RecordRules{Topic: testTopic, Partition: 3, Now: testNow, TimestampBeforeMaxMs: before, TimestampAfterMaxMs: after}
}

// refused checks that err is a *RecordErrors wrapping want with exactly the
// given record errors, and returns it.
func refused(t *testing.T, err error, want error, records []RecordError) *RecordErrors {
	t.Helper()
	var re *RecordErrors
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a *RecordErrors", err)
	}
	if !errors.Is(err, want) || re.Err != want {
		t.Fatalf("error wraps %v, want %v", re.Err, want)
	}
	if !reflect.DeepEqual(re.Records, records) {
		t.Fatalf("record errors\n got %+v\nwant %+v", re.Records, records)
	}
	return re
}

func check(t *testing.T, rules RecordRules, b []byte) error {
	t.Helper()
	hs, err := Validate(b, 1<<20)
	if err != nil || len(hs) != 1 {
		t.Fatalf("test batch invalid: %v (%d headers)", err, len(hs))
	}
	return rules.Check(b, hs[0])
}

const keyMessage = "Compacted topic cannot accept message without key in topic partition orders-3"

// TestCompactedTopicRefusesKeylessRecord: Kafka's validateKey, for every
// codec. The keyless record sits in the middle of the batch; batch_index
// must point at it, and the message is Kafka's.
func TestCompactedTopicRefusesKeylessRecord(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			recs := keyed(5)
			recs[2].key = nil
			b := buildBatch(t, batchSpec{firstTS: testNow, codec: codec, records: recs})
			re := refused(t, check(t, compacted(), b), ErrInvalidRecord, []RecordError{{Index: 2, Message: keyMessage}})
			want := "One or more records have been rejected due to 1 record errors in total, and only showing the first three errors at most: " +
				"[RecordError(batchIndex=2, message='" + keyMessage + "')]"
			if got := re.Message(); got != want {
				t.Fatalf("message\n got %q\nwant %q", got, want)
			}

			// The same batch with every key present passes, and so does a
			// topic that is not compacted.
			if err := check(t, compacted(), buildBatch(t, batchSpec{firstTS: testNow, codec: codec, records: keyed(5)})); err != nil {
				t.Fatalf("keyed batch: %v", err)
			}
			notCompacted := compacted()
			notCompacted.RequireKeys = false
			if err := check(t, notCompacted, b); err != nil {
				t.Fatalf("keyless record on a topic that is not compacted: %v", err)
			}
		})
	}
}

// TestEmptyKeyIsAKey: only a null key (length -1) is missing; Kafka's
// Record.hasKey is keySize >= 0.
func TestEmptyKeyIsAKey(t *testing.T) {
	recs := keyed(3)
	recs[1].key = []byte{}
	if err := check(t, compacted(), buildBatch(t, batchSpec{firstTS: testNow, records: recs})); err != nil {
		t.Fatalf("empty key refused: %v", err)
	}
}

// TestEveryKeylessRecordIsReported: Kafka lists every refused record and
// shows the first three in the message.
func TestEveryKeylessRecordIsReported(t *testing.T) {
	recs := keyed(6)
	for _, i := range []int{0, 2, 3, 5} {
		recs[i].key = nil
	}
	re := refused(t, check(t, compacted(), buildBatch(t, batchSpec{firstTS: testNow, records: recs})), ErrInvalidRecord,
		[]RecordError{{0, keyMessage}, {2, keyMessage}, {3, keyMessage}, {5, keyMessage}})
	shown := fmt.Sprintf("[RecordError(batchIndex=0, message='%[1]s'), RecordError(batchIndex=2, message='%[1]s'), RecordError(batchIndex=3, message='%[1]s')]", keyMessage)
	if want := "One or more records have been rejected due to 4 record errors in total, and only showing the first three errors at most: " + shown; re.Message() != want {
		t.Fatalf("message\n got %q\nwant %q", re.Message(), want)
	}
}

func rangeMessage(ts, offset, before, after int64) string {
	return fmt.Sprintf("Timestamp %d of message with offset %d is out of range. The timestamp should be within [%d, %d]",
		ts, offset, testNow-before, testNow+after)
}

// TestTimestampBounds: KIP-937's before/after bounds on CreateTime
// timestamps, for every codec, each refused record named.
func TestTimestampBounds(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			// Records 1 and 3 lead the clock by two hours: beyond after=1h.
			recs := keyed(4)
			recs[1].tsDelta = 2 * hourMs
			recs[3].tsDelta = 2*hourMs + 7
			b := buildBatch(t, batchSpec{firstTS: testNow, codec: codec, records: recs})
			re := refused(t, check(t, createTime(noBound, hourMs), b), ErrInvalidTimestamp, []RecordError{
				{1, rangeMessage(testNow+2*hourMs, 1, noBound, hourMs)},
				{3, rangeMessage(testNow+2*hourMs+7, 3, noBound, hourMs)},
			})
			if want := "One or more records have been rejected due to invalid timestamp"; re.Message() != want {
				t.Fatalf("message %q, want %q", re.Message(), want)
			}
			// Exactly at the bound is allowed.
			if err := check(t, createTime(noBound, 2*hourMs+7), b); err != nil {
				t.Fatalf("timestamps at the after bound: %v", err)
			}

			// Record 2 trails the clock by two hours: beyond before=1h. A
			// negative delta, which the header's FirstTimestamp does not
			// reveal.
			recs = keyed(4)
			recs[2].tsDelta = -2 * hourMs
			b = buildBatch(t, batchSpec{firstTS: testNow, codec: codec, records: recs})
			refused(t, check(t, createTime(hourMs, noBound), b), ErrInvalidTimestamp, []RecordError{
				{2, rangeMessage(testNow-2*hourMs, 2, hourMs, noBound)},
			})
			if err := check(t, createTime(noBound, noBound), b); err != nil {
				t.Fatalf("no bounds: %v", err)
			}
		})
	}
}

// TestRecordWithoutTimestampIsNotChecked: Kafka skips a record whose
// timestamp is NO_TIMESTAMP (-1).
func TestRecordWithoutTimestampIsNotChecked(t *testing.T) {
	b := buildBatch(t, batchSpec{firstTS: NoTimestamp, records: []testRecord{{key: []byte("k"), value: []byte("v")}}})
	if err := check(t, createTime(0, 0), b); err != nil {
		t.Fatalf("record without a timestamp: %v", err)
	}
}

// TestLogAppendTimeTopicSkipsTimestampBounds: the broker stamps its own
// time on such a topic, so producer timestamps are not checked.
func TestLogAppendTimeTopicSkipsTimestampBounds(t *testing.T) {
	recs := keyed(3)
	recs[1].tsDelta = 100 * hourMs
	recs[2].tsDelta = -100 * hourMs
	b := buildBatch(t, batchSpec{firstTS: testNow, records: recs})
	rules := createTime(0, 0)
	if err := check(t, rules, b); !errors.Is(err, ErrInvalidTimestamp) {
		t.Fatalf("CreateTime with no skew allowed: %v, want ErrInvalidTimestamp", err)
	}
	rules.LogAppendTime = true
	if err := check(t, rules, b); err != nil {
		t.Fatalf("LogAppendTime topic: %v", err)
	}
}

// TestProducerMayNotClaimLogAppendTime: Kafka's validateTimestamp refuses
// every record of a producer's batch with the LogAppendTime attribute on a
// LogAppendTime topic, printing the record as its toString does.
func TestProducerMayNotClaimLogAppendTime(t *testing.T) {
	rules := createTime(noBound, noBound)
	rules.LogAppendTime = true
	recs := []testRecord{{key: []byte("key"), value: []byte("value")}, {offsetDelta: 1, value: []byte("vv")}}
	b := buildBatch(t, batchSpec{firstTS: testNow, attrs: attrLogAppendTime, records: recs})
	msg := func(rec string) string {
		return "Invalid timestamp type in message " + rec + ". Producer should not set timestamp type to LogAppendTime."
	}
	refused(t, check(t, rules, b), ErrInvalidTimestamp, []RecordError{
		{0, msg(fmt.Sprintf("DefaultRecord(offset=0, timestamp=%d, key=3 bytes, value=5 bytes)", testNow))},
		{1, msg(fmt.Sprintf("DefaultRecord(offset=1, timestamp=%d, key=0 bytes, value=2 bytes)", testNow))},
	})
	// Compressed, Kafka reads the records without keys and values.
	b = buildBatch(t, batchSpec{firstTS: testNow, codec: CodecGzip, attrs: attrLogAppendTime, records: recs})
	refused(t, check(t, rules, b), ErrInvalidTimestamp, []RecordError{
		{0, msg(fmt.Sprintf("PartialDefaultRecord(offset=0, timestamp=%d, key=3 bytes, value=5 bytes)", testNow))},
		{1, msg(fmt.Sprintf("PartialDefaultRecord(offset=1, timestamp=%d, key=-1 bytes, value=2 bytes)", testNow))},
	})
}

// TestKeyAndTimestampErrorsTogether: the key rule comes first for a record;
// any timestamp error makes the batch's error INVALID_TIMESTAMP.
func TestKeyAndTimestampErrorsTogether(t *testing.T) {
	recs := keyed(3)
	recs[0].key = nil                            // keyless, timestamp fine
	recs[1].key, recs[1].tsDelta = nil, 2*hourMs // keyless and too late: the key is reported
	recs[2].tsDelta = 2 * hourMs                 // too late
	rules := compacted()
	rules.TimestampAfterMaxMs = hourMs
	refused(t, check(t, rules, buildBatch(t, batchSpec{firstTS: testNow, records: recs})), ErrInvalidTimestamp, []RecordError{
		{0, keyMessage},
		{1, keyMessage},
		{2, rangeMessage(testNow+2*hourMs, 2, noBound, hourMs)},
	})
}

// corruptRecords is a batch with a valid CRC whose records do not decode:
// only a check that reads the records notices.
func corruptRecords(t *testing.T, maxTS int64) []byte {
	t.Helper()
	recs := keyed(2)
	b := buildBatch(t, batchSpec{firstTS: testNow, records: recs})
	b[HeaderSize] = 0x7f // first record's length varint: far beyond the batch
	putInt64(b[35:], maxTS)
	fixCRC(b)
	return b
}

func putInt64(b []byte, v int64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// TestRecordsDecodedOnlyWhenNeeded: the header settles the common cases
// without reading a record (a batch whose records do not decode passes);
// a rule that needs the records reads them and refuses records that do not
// decode with ErrInvalidRecord, as Kafka's record iterator does.
func TestRecordsDecodedOnlyWhenNeeded(t *testing.T) {
	lat := createTime(0, 0)
	lat.LogAppendTime = true
	headerOnly := []struct {
		name  string
		rules RecordRules
		maxTS int64
	}{
		{"no bounds", createTime(noBound, noBound), testNow},
		{"MaxTimestamp within after bound", createTime(noBound, hourMs), testNow + hourMs},
		{"LogAppendTime topic", lat, testNow + 100*hourMs},
	}
	for _, c := range headerOnly {
		if err := check(t, c.rules, corruptRecords(t, c.maxTS)); err != nil {
			t.Errorf("%s: records read (%v), want the header to settle it", c.name, err)
		}
	}
	decoded := []struct {
		name  string
		rules RecordRules
		maxTS int64
	}{
		{"compacted", compacted(), testNow},
		{"finite before bound", createTime(hourMs, noBound), testNow},
		{"MaxTimestamp beyond after bound", createTime(noBound, hourMs), testNow + hourMs + 1},
	}
	for _, c := range decoded {
		var refused *RecordErrors
		if err := check(t, c.rules, corruptRecords(t, c.maxTS)); !errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrCorrupt) || errors.As(err, &refused) {
			t.Errorf("%s: %v, want the records read and ErrInvalidRecord", c.name, err)
		}
	}
}

// TestCheckAllocatesNothingPerRecord: reading an uncompressed batch for
// the rules allocates nothing, headers or not.
func TestCheckAllocatesNothingPerRecord(t *testing.T) {
	b := buildBatch(t, batchSpec{firstTS: testNow, records: simpleRecords(200)})
	hs, err := Validate(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	rules := compacted()
	rules.TimestampBeforeMaxMs, rules.TimestampAfterMaxMs = 10*hourMs, 10*hourMs
	if allocs := testing.AllocsPerRun(50, func() {
		if err := rules.Check(b, hs[0]); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per check, want 0", allocs)
	}
}

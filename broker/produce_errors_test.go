package broker

// Produce answers of compat-tests/ERRORS.md that follow Kafka 4.x's
// KafkaApis.handleProduceRequest, ProduceRequest.validateRecords and
// LogValidator, each driven by a Produce request pinned to its version.

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// producePart is one partition's records in a hand-built Produce request.
type producePart struct {
	topic     string
	partition int32
	records   []byte
}

// produceParts sends one Produce request at version with acks and an
// optional transactional ID, carrying parts, and returns each partition's
// answer keyed by "topic/partition".
func produceParts(t *testing.T, cl *kgo.Client, version, acks int16, txnID *string, parts ...producePart) map[string]kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks, req.TimeoutMillis, req.TransactionID = acks, 5000, txnID
	for _, p := range parts {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p.partition, p.records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp := rawRequest(t, cl, req).(*kmsg.ProduceResponse)
	out := map[string]kmsg.ProduceResponseTopicPartition{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[partKey(rt.Topic, rp.Partition)] = rp
		}
	}
	if len(out) != len(parts) {
		t.Fatalf("%d partitions answered, want %d", len(out), len(parts))
	}
	return out
}

func partKey(topic string, partition int32) string {
	return fmt.Sprintf("%s/%d", topic, partition)
}

// encodeBatch builds a v2 batch of n keyed records, all at timestamp ts,
// with the given attributes (codec bits, transactional bit), compressing
// the records section with the codec the attributes name, and a correct
// CRC. Unlike makeBatch's, its records decode (each carries its length).
func encodeBatch(t *testing.T, n int, attrs int16, producerID int64, ts int64) []byte {
	t.Helper()
	var records []byte
	for i := 0; i < n; i++ {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Key, r.Value = []byte("k"), []byte("value")
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the body after a 1-byte length 0
		records = r.AppendTo(records)
	}
	if codec := batch.Codec(attrs & 7); codec != batch.CodecNone {
		var err error
		if records, err = batch.Compress(codec, records); err != nil {
			t.Fatal(err)
		}
	}
	b := kmsg.NewRecordBatch()
	b.Magic, b.Attributes = 2, attrs
	b.LastOffsetDelta = int32(n - 1)
	b.FirstTimestamp, b.MaxTimestamp = ts, ts
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = producerID, -1, -1
	if producerID >= 0 {
		b.ProducerEpoch, b.FirstSequence = 0, 0
	}
	b.NumRecords = int32(n)
	b.Records = records
	return sealBatch(b)
}

// sealBatch fills in a v2 batch's length and CRC-32C and encodes it.
func sealBatch(b kmsg.RecordBatch) []byte {
	b.Length = int32(len(b.AppendTo(nil)) - 12)
	b.CRC = int32(crc32.Checksum(b.AppendTo(nil)[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// legacyMessage builds a one-message set in the message format of magic 0
// or 1, which Kafka 4.x no longer accepts.
func legacyMessage(magic int8) []byte {
	var raw []byte
	if magic == 0 {
		m := kmsg.MessageV0{Magic: 0, Key: []byte("k"), Value: []byte("value")}
		raw = m.AppendTo(nil)
		m.MessageSize = int32(len(raw) - 12)
		raw = m.AppendTo(nil)
		m.CRC = int32(crc32.ChecksumIEEE(raw[16:]))
		return m.AppendTo(nil)
	}
	m := kmsg.MessageV1{Magic: 1, Timestamp: time.Now().UnixMilli(), Key: []byte("k"), Value: []byte("value")}
	raw = m.AppendTo(nil)
	m.MessageSize = int32(len(raw) - 12)
	raw = m.AppendTo(nil)
	m.CRC = int32(crc32.ChecksumIEEE(raw[16:]))
	return m.AppendTo(nil)
}

// TestProduceLegacyMagicIsInvalidRecord: a message set of magic 0 or 1 is
// INVALID_RECORD (Kafka 4.x's ProduceRequest.validateRecords), not
// UNSUPPORTED_FOR_MESSAGE_FORMAT; a magic byte no format has is
// CORRUPT_MESSAGE (Kafka's batch iterator). Nothing is written.
func TestProduceLegacyMagicIsInvalidRecord(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "legacy", 1, nil)
	now := time.Now().UnixMilli()
	magic3 := makeBatch(-1, -1, -1, 1, now)
	magic3[16] = 3
	for _, v := range []int16{3, 7, 11} {
		wantErr(t, fmt.Sprintf("magic 0 message at v%d", v), produceRaw(t, cl, v, "legacy", 0, legacyMessage(0)).ErrorCode, kerr.InvalidRecord)
		wantErr(t, fmt.Sprintf("magic 1 message at v%d", v), produceRaw(t, cl, v, "legacy", 0, legacyMessage(1)).ErrorCode, kerr.InvalidRecord)
		wantErr(t, fmt.Sprintf("magic 3 batch at v%d", v), produceRaw(t, cl, v, "legacy", 0, magic3).ErrorCode, kerr.CorruptMessage)
	}
	if end := listLatest(t, cl, "legacy", 0); end != 0 {
		t.Fatalf("log end %d after refused message sets, want 0", end)
	}
}

// TestProduceZstdBelowV7: a zstd-compressed batch is
// UNSUPPORTED_COMPRESSION_TYPE at Produce v3-v6 (zstd came with v7,
// KIP-110) and appended from v7; other codecs are appended at v3.
func TestProduceZstdBelowV7(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "zstd", 1, nil)
	now := time.Now().UnixMilli()
	zstd := encodeBatch(t, 2, int16(batch.CodecZstd), -1, now)
	for v := int16(3); v <= 6; v++ {
		wantErr(t, fmt.Sprintf("zstd batch at v%d", v), produceRaw(t, cl, v, "zstd", 0, zstd).ErrorCode, kerr.UnsupportedCompressionType)
	}
	if end := listLatest(t, cl, "zstd", 0); end != 0 {
		t.Fatalf("log end %d after refused zstd batches, want 0", end)
	}
	if got := produceRaw(t, cl, 3, "zstd", 0, encodeBatch(t, 2, int16(batch.CodecLZ4), -1, now)); got.ErrorCode != 0 || got.BaseOffset != 0 {
		t.Fatalf("lz4 batch at v3: %v, offset %d", kerr.ErrorForCode(got.ErrorCode), got.BaseOffset)
	}
	if got := produceRaw(t, cl, 7, "zstd", 0, zstd); got.ErrorCode != 0 || got.BaseOffset != 2 {
		t.Fatalf("zstd batch at v7: %v, offset %d", kerr.ErrorForCode(got.ErrorCode), got.BaseOffset)
	}
}

// TestProduceTransactionalWithoutTransactionalID: a request with no
// transactional ID whose records include a transactional batch is refused
// as a whole, as Kafka's handleProduceRequest refuses it before looking at
// topics or records: every partition, the unknown one and the one with a
// plain batch included, answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and
// nothing is written.
func TestProduceTransactionalWithoutTransactionalID(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "txnless", 2, nil)
	now := time.Now().UnixMilli()
	const transactional = 0x10
	for _, v := range []int16{3, 11, 12} {
		got := produceParts(t, cl, v, -1, nil,
			producePart{"txnless", 0, makeBatch(-1, -1, -1, 1, now)},
			producePart{"txnless", 1, encodeBatch(t, 1, transactional, 1000, now)},
			producePart{"no-such-topic", 0, makeBatch(-1, -1, -1, 1, now)},
		)
		for k, p := range got {
			wantErr(t, fmt.Sprintf("%s at v%d", k, v), p.ErrorCode, kerr.TransactionalIDAuthorizationFailed)
		}
	}
	for p := int32(0); p < 2; p++ {
		if end := listLatest(t, cl, "txnless", p); end != 0 {
			t.Fatalf("partition %d: log end %d, want 0", p, end)
		}
	}
	// The same plain batch alone is appended.
	got := produceParts(t, cl, 11, -1, nil, producePart{"txnless", 0, makeBatch(-1, -1, -1, 1, now)})
	wantErr(t, "plain batch alone", got[partKey("txnless", 0)].ErrorCode, noError)
}

// TestProduceInvalidAcksPrecedence: with acks 2 Kafka answers a partition
// of an unknown topic UNKNOWN_TOPIC_OR_PARTITION and a partition whose
// records fail ProduceRequest.validateRecords with that error, since both
// are settled before ReplicaManager.appendRecords looks at acks; only the
// partitions that reach it answer INVALID_REQUIRED_ACKS.
func TestProduceInvalidAcksPrecedence(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "acks", 3, nil)
	now := time.Now().UnixMilli()
	got := produceParts(t, cl, 5, 2, nil,
		producePart{"no-such-topic", 0, makeBatch(-1, -1, -1, 1, now)},
		producePart{"acks", 7, makeBatch(-1, -1, -1, 1, now)},
		producePart{"acks", 0, makeBatch(-1, -1, -1, 1, now)},
		producePart{"acks", 1, legacyMessage(1)},
		producePart{"acks", 2, encodeBatch(t, 1, int16(batch.CodecZstd), -1, now)},
	)
	wantErr(t, "unknown topic", got[partKey("no-such-topic", 0)].ErrorCode, kerr.UnknownTopicOrPartition)
	wantErr(t, "unknown partition", got[partKey("acks", 7)].ErrorCode, kerr.UnknownTopicOrPartition)
	wantErr(t, "valid batch", got[partKey("acks", 0)].ErrorCode, kerr.InvalidRequiredAcks)
	wantErr(t, "magic 1 message", got[partKey("acks", 1)].ErrorCode, kerr.InvalidRecord)
	wantErr(t, "zstd at v5", got[partKey("acks", 2)].ErrorCode, kerr.UnsupportedCompressionType)
	for p := int32(0); p < 3; p++ {
		if end := listLatest(t, cl, "acks", p); end != 0 {
			t.Fatalf("partition %d: log end %d, want 0", p, end)
		}
	}
}

// TestProduceUndecodableRecordsOnCompactedTopic: on a compacted topic,
// whose key rule reads every record, a batch with a valid CRC whose records
// do not decode is INVALID_RECORD, as Kafka's LogValidator (through the
// record iterator's InvalidRecordException) answers, not CORRUPT_MESSAGE.
func TestProduceUndecodableRecordsOnCompactedTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "compacted", 1, map[string]string{"cleanup.policy": "compact"})
	now := time.Now().UnixMilli()
	good := encodeBatch(t, 2, 0, -1, now)
	bad := bytes.Clone(good)
	bad[batch.HeaderSize] = 0x7f // the first record's length varint: -64
	crc := crc32.Checksum(bad[21:], crc32.MakeTable(crc32.Castagnoli))
	bad[17], bad[18], bad[19], bad[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	got := produceRaw(t, cl, 11, "compacted", 0, bad)
	wantErr(t, "undecodable records", got.ErrorCode, kerr.InvalidRecord)
	if len(got.ErrorRecords) != 0 {
		t.Errorf("record_errors %v; Kafka names no record for a batch it cannot read", got.ErrorRecords)
	}
	if end := listLatest(t, cl, "compacted", 0); end != 0 {
		t.Fatalf("log end %d, want 0", end)
	}
	wantErr(t, "the same batch with its records intact", produceRaw(t, cl, 11, "compacted", 0, good).ErrorCode, noError)
}

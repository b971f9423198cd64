package batch

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecord describes one record to encode with kmsg, independently of the
// decoder under test.
type testRecord struct {
	offsetDelta int32
	tsDelta     int64
	key, value  []byte
	headers     []kmsg.Header
}

// encodeRecords encodes records with kmsg.Record, computing each length
// prefix by encoding the body once with a zero length.
func encodeRecords(recs []testRecord) []byte {
	var out []byte
	for _, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.tsDelta,
			OffsetDelta:      r.offsetDelta,
			Key:              r.key,
			Value:            r.value,
			Headers:          r.headers,
		}
		body := kr.AppendTo(nil)[1:] // drop the 1-byte varint of Length 0
		kr.Length = int32(len(body))
		out = kr.AppendTo(out)
	}
	return out
}

// batchSpec describes a batch for buildBatch.
type batchSpec struct {
	base       int64
	firstTS    int64
	codec      Codec
	attrs      int16 // OR-ed onto the codec bits
	producerID int64
	epoch      int16
	seq        int32
	records    []testRecord
	// numRecords/lastDelta override the derived counts when non-nil.
	numRecords *int32
	lastDelta  *int32
}

// buildBatch encodes a v2 batch with kmsg.RecordBatch and a CRC computed
// here with hash/crc32, not by the package under test.
func buildBatch(t testing.TB, s batchSpec) []byte {
	t.Helper()
	raw := encodeRecords(s.records)
	section := raw
	if s.codec != CodecNone {
		var err error
		if section, err = Compress(s.codec, raw); err != nil {
			t.Fatalf("compress %s: %v", s.codec, err)
		}
	}
	return assemble(s, section)
}

// assemble builds the batch around an already encoded records section.
func assemble(s batchSpec, section []byte) []byte {
	var maxTS int64 = s.firstTS
	var lastDelta int32
	for _, r := range s.records {
		maxTS = max(maxTS, s.firstTS+r.tsDelta)
		lastDelta = max(lastDelta, r.offsetDelta)
	}
	n := int32(len(s.records))
	if s.numRecords != nil {
		n = *s.numRecords
	}
	if s.lastDelta != nil {
		lastDelta = *s.lastDelta
	}
	seq := s.seq
	pid := s.producerID
	if pid == 0 {
		pid, seq = -1, -1
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          s.base,
		Length:               int32(49 + len(section)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(s.codec) | s.attrs,
		LastOffsetDelta:      lastDelta,
		FirstTimestamp:       s.firstTS,
		MaxTimestamp:         maxTS,
		ProducerID:           pid,
		ProducerEpoch:        s.epoch,
		FirstSequence:        seq,
		NumRecords:           n,
		Records:              section,
	}
	b := kb.AppendTo(nil)
	fixCRC(b)
	return b
}

// fixCRC recomputes the CRC of one batch in place.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// simpleRecords returns n records with distinct keys, values and headers.
func simpleRecords(n int) []testRecord {
	recs := make([]testRecord, n)
	for i := range recs {
		recs[i] = testRecord{
			offsetDelta: int32(i),
			tsDelta:     int64(i * 10),
			key:         []byte{'k', byte('0' + i%10)},
			value:       []byte("value-" + string(rune('a'+i%26))),
		}
		if i%3 == 0 {
			recs[i].headers = []kmsg.Header{{Key: "h", Value: []byte{byte(i)}}, {Key: "nil"}}
		}
	}
	return recs
}

func ptr[T any](v T) *T { return &v }

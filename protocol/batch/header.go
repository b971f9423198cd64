package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// HeaderSize is the size of a v2 batch header: everything before the first
// record.
const HeaderSize = 61

// LengthOverhead is the size of the BaseOffset and BatchLength fields, which
// BatchLength does not count.
const LengthOverhead = 12

// Byte positions of the header fields, see the package doc.
const (
	offBaseOffset    = 0
	offLength        = 8
	offLeaderEpoch   = 12
	offMagic         = 16
	offCRC           = 17
	offAttributes    = 21
	offLastDelta     = 23
	offFirstTS       = 27
	offMaxTS         = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offNumRecords    = 57
)

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Sentinel errors. They are wrapped with context; test them with errors.Is.
var (
	// ErrCorrupt maps to CORRUPT_MESSAGE: bad CRC, inconsistent lengths,
	// truncated bytes, an invalid magic byte, or undecodable records read
	// back from a log (RecordRules.Check refuses a producer's undecodable
	// records with ErrInvalidRecord).
	ErrCorrupt = errors.New("batch: corrupt message")
	// ErrTooLarge maps to MESSAGE_TOO_LARGE: a batch above the size limit,
	// or records that decompress beyond MaxDecompressedSize.
	ErrTooLarge = errors.New("batch: message too large")
	// ErrUnsupportedMagic reports a batch in a legacy message format
	// (magic 0 or 1), which Kafka 4.x no longer takes from producers
	// (INVALID_RECORD). A magic byte that no format has is ErrCorrupt, as
	// Kafka's batch iterator finds it (CORRUPT_MESSAGE).
	ErrUnsupportedMagic = errors.New("batch: unsupported magic")
	// ErrInvalidRecord maps to INVALID_RECORD: a well-formed batch that
	// breaks a rule producers must follow (record count vs offset delta, a
	// record without a key on a compacted topic, records that do not
	// decode: see RecordRules).
	ErrInvalidRecord = errors.New("batch: invalid record")
	// ErrInvalidTimestamp maps to INVALID_TIMESTAMP: a record whose
	// timestamp is outside the topic's bounds, or a producer's batch that
	// claims LogAppendTime (see RecordRules).
	ErrInvalidTimestamp = errors.New("batch: invalid timestamp")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded 61-byte header of a v2 record batch.
type Header struct {
	BaseOffset           int64
	Length               int32 // BatchLength: bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader decodes the header at the start of b. It needs at least
// HeaderSize bytes (ErrCorrupt otherwise), a magic byte of 2
// (ErrUnsupportedMagic for the legacy 0 and 1, ErrCorrupt for any other
// value; checked first so that short legacy messages report their magic)
// and a BatchLength that covers at least the header. It does not check
// that the whole batch is present or its CRC.
func ParseHeader(b []byte) (Header, error) {
	if len(b) > offMagic {
		switch m := int8(b[offMagic]); m {
		case 2:
		case 0, 1:
			return Header{}, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, m)
		default:
			return Header{}, fmt.Errorf("%w: invalid magic %d", ErrCorrupt, m)
		}
	}
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d for a batch header", ErrCorrupt, len(b), HeaderSize)
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		Length:               int32(binary.BigEndian.Uint32(b[offLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastDelta:])),
		FirstTimestamp:       int64(binary.BigEndian.Uint64(b[offFirstTS:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTS:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[offNumRecords:])),
	}
	if h.Length < HeaderSize-LengthOverhead {
		return Header{}, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, h.Length)
	}
	return h, nil
}

// TotalSize is the size of the whole batch in bytes, length fields included.
func (h Header) TotalSize() int { return LengthOverhead + int(h.Length) }

// LastOffset is the offset of the last record the batch was written with.
// After compaction the record with this offset may be gone, but the batch
// keeps the value so offsets stay monotonic.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is LastOffset+1: the offset the following batch starts at.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Codec is the compression codec in attribute bits 0-2. Values above
// CodecZstd are unknown; Validate rejects them.
func (h Header) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// IsTransactional reports attribute bit 4.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports attribute bit 5: a transaction marker batch.
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// LogAppendTime reports attribute bit 3: the broker's append time, stored in
// MaxTimestamp, replaces every record's own timestamp.
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// LastSequence is the sequence number of the batch's last record. Sequences
// wrap from MaxInt32 to 0 (Kafka's DefaultRecordBatch.incrementSequence), and
// a batch without sequences (BaseSequence -1) has last sequence -1.
func (h Header) LastSequence() int32 {
	if h.BaseSequence == -1 {
		return -1
	}
	return IncrementSequence(h.BaseSequence, h.LastOffsetDelta)
}

// IncrementSequence adds inc to seq the way producers number records: past
// MaxInt32 the count restarts at 0.
func IncrementSequence(seq, inc int32) int32 {
	if seq > math.MaxInt32-inc {
		return inc - (math.MaxInt32 - seq) - 1
	}
	return seq + inc
}

// CRC computes the CRC-32C of one batch: bytes 21 to the end of b. b must
// hold exactly one batch (and at least 21 bytes, else the CRC of nothing).
func CRC(b []byte) uint32 {
	if len(b) < offAttributes {
		return crc32.Checksum(nil, castagnoli)
	}
	return crc32.Checksum(b[offAttributes:], castagnoli)
}

// SetBaseOffset rewrites the BaseOffset field in place. The field is outside
// the CRC, so nothing else changes. b must hold at least 8 bytes.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites the PartitionLeaderEpoch field in place;
// it is outside the CRC. b must hold at least 16 bytes.
func SetPartitionLeaderEpoch(b []byte, e int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(e))
}

// SetLogAppendTime stamps one batch (b holds exactly one) with the broker's
// append time, as Kafka's LogValidator does for topics with
// message.timestamp.type=LogAppendTime: it sets the timestamp-type attribute
// bit, writes ts into MaxTimestamp, leaves FirstTimestamp and the records
// untouched (readers substitute MaxTimestamp for every record), and
// recomputes the CRC because both fields are covered by it. b must hold at
// least HeaderSize bytes.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:])
	if attrs&attrLogAppendTime != 0 && int64(binary.BigEndian.Uint64(b[offMaxTS:])) == ts {
		return
	}
	binary.BigEndian.PutUint16(b[offAttributes:], attrs|attrLogAppendTime)
	binary.BigEndian.PutUint64(b[offMaxTS:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], CRC(b))
}

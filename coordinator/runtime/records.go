package runtime

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Record is one key/value of a coordinator topic; a nil Value is a
// tombstone.
type Record struct {
	Key, Value []byte
}

// Producer identifies who writes a batch. The coordinator's own writes use
// NoProducer; a transactional offset commit passes the transaction's
// producer ID and epoch with Transactional set.
type Producer struct {
	ID            int64
	Epoch         int16
	Transactional bool
}

// NoProducer writes as the coordinator itself: producer ID and epoch -1.
var NoProducer = Producer{ID: -1, Epoch: -1}

// attrTransactional is the batch attributes bit of a transactional batch.
const attrTransactional = 0x10

// BuildBatch encodes recs as one uncompressed magic-2 batch with base
// offset 0 (the log assigns the real one), timestamps ts, and a CRC-32C
// over attributes to the end.
func BuildBatch(recs []Record, ts int64, p Producer) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		probe := rec.AppendTo(nil) // with Length 0: a one-byte length prefix
		rec.Length = int32(len(probe) - 1)
		body = rec.AppendTo(body)
	}
	var attrs int16
	if p.Transactional {
		// A coordinator write: sequence -1 tells the log to check the
		// producer's epoch (fencing zombies) but not its sequence, which
		// restarts with every transaction (Kafka appends these with the
		// coordinator origin, to the same effect).
		attrs |= attrTransactional
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           p.ID,
		ProducerEpoch:        p.Epoch,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	return b
}

// Entry is one entry of the log as replay sees it: a record at its offset,
// or a transaction marker.
type Entry struct {
	Offset int64
	// ProducerID is the batch's producer ID if it is transactional, else -1.
	ProducerID int64
	// Record is zero for a marker.
	Record
	// Marker: a commit (Commit set) or abort marker of ProducerID's
	// transaction.
	Marker, Commit bool
}

// Control record types (the int16 after the key version of a control
// record's key), as Kafka's ControlRecordType numbers them.
const (
	controlAbort  = 0
	controlCommit = 1
)

// Decode splits concatenated batches read from the log, in log order,
// skipping records below from (a read may start inside a batch). Records of
// transactional batches carry the batch's producer ID; a control batch
// yields its commit and abort markers (other control records are skipped).
// It returns the offset after the last complete batch; a trailing partial
// batch is left for the next read. An error means b does not hold record
// batches.
func Decode(b []byte, from int64) ([]Entry, int64, error) {
	var out []Entry
	next := from
	for pos := 0; pos < len(b); {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil {
			return nil, 0, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		size := h.TotalSize()
		if size > len(b)-pos {
			if pos == 0 {
				return nil, 0, fmt.Errorf("batch at offset %d claims %d bytes, read returned %d", h.BaseOffset, size, len(b))
			}
			break
		}
		one := b[pos : pos+size]
		pos += size
		if h.NextOffset() > next {
			next = h.NextOffset()
		}
		pid := int64(-1)
		if h.IsTransactional() {
			pid = h.ProducerID
		}
		err = batch.ForEachRecord(one, func(r batch.Record) bool {
			if r.Offset < from {
				return true
			}
			e := Entry{Offset: r.Offset, ProducerID: pid, Record: Record{Key: r.Key, Value: r.Value}}
			if h.IsControl() {
				if len(r.Key) < 4 {
					return true
				}
				typ := int16(binary.BigEndian.Uint16(r.Key[2:]))
				if typ != controlAbort && typ != controlCommit {
					return true
				}
				e = Entry{Offset: r.Offset, ProducerID: h.ProducerID, Marker: true, Commit: typ == controlCommit}
			}
			out = append(out, e)
			return true
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return out, next, nil
}

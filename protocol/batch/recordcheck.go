package batch

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// NoTimestamp is the timestamp of a record written without one; the
// timestamp rules skip it, as Kafka's do.
const NoTimestamp = -1

// RecordRules are the per-record rules a leader applies to a client's batch
// before it appends it, those of Kafka's LogValidator.validateRecord
// (storage/.../internals/log/LogValidator.java):
//
//   - on a compacted topic every record must have a key; an empty key
//     (length 0) is a key, only a null one (length -1) is refused
//     (INVALID_RECORD);
//   - on a CreateTime topic a record's timestamp, unless it has none, must
//     lie within [Now-TimestampBeforeMaxMs, Now+TimestampAfterMaxMs]
//     (KIP-937; INVALID_TIMESTAMP);
//   - a batch may not claim LogAppendTime itself when that leaves its
//     records without a checked timestamp: always on a LogAppendTime topic,
//     and for a record without a timestamp on a CreateTime one
//     (INVALID_TIMESTAMP).
//
// Kafka checks every record and reports each one that breaks a rule, the
// key rule before the timestamp rules; one refused record refuses the whole
// batch.
type RecordRules struct {
	// Topic and Partition name the partition in the messages, as Kafka's
	// TopicPartition prints it ("orders-0").
	Topic     string
	Partition int32
	// RequireKeys: cleanup.policy contains compact.
	RequireKeys bool
	// LogAppendTime: message.timestamp.type=LogAppendTime. The broker
	// stamps the batch, so record timestamps are not checked.
	LogAppendTime bool
	// Now is the broker's clock in Unix milliseconds.
	Now int64
	// TimestampBeforeMaxMs and TimestampAfterMaxMs are
	// message.timestamp.before.max.ms and message.timestamp.after.max.ms:
	// how far a CreateTime timestamp may trail or lead Now. math.MaxInt64
	// is no bound; zero allows no skew at all.
	TimestampBeforeMaxMs int64
	TimestampAfterMaxMs  int64
}

// RecordError is one refused record: Kafka's ProduceResponse.RecordError,
// sent as batch_index and batch_index_error_message (Produce v8+).
type RecordError struct {
	Index   int32 // the record's position in its batch, from 0
	Message string
}

// RecordErrors refuses a batch because of some of its records. It wraps
// ErrInvalidTimestamp when any record's timestamp was refused, as Kafka
// then answers INVALID_TIMESTAMP for the whole batch, and ErrInvalidRecord
// otherwise; find it with errors.As.
type RecordErrors struct {
	Err     error
	Records []RecordError
}

func (e *RecordErrors) Error() string { return e.Err.Error() + ": " + e.Message() }

func (e *RecordErrors) Unwrap() error { return e.Err }

// Message is the partition's error_message, worded as Kafka words it
// (LogValidator.processRecordErrors).
func (e *RecordErrors) Message() string {
	if errors.Is(e.Err, ErrInvalidTimestamp) {
		return "One or more records have been rejected due to invalid timestamp"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "One or more records have been rejected due to %d record errors in total, "+
		"and only showing the first three errors at most: [", len(e.Records))
	for i, r := range e.Records[:min(len(e.Records), 3)] {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "RecordError(batchIndex=%d, message='%s')", r.Index, r.Message)
	}
	sb.WriteString("]")
	return sb.String()
}

// Check applies the rules to one whole batch b with header h, which
// Validate has passed. It returns nil, a *RecordErrors, an error wrapping
// ErrInvalidRecord for records that do not decode (bad sizes, bytes left
// after the last record: Kafka's record iterator throws
// InvalidRecordException), or one wrapping ErrCorrupt or ErrTooLarge for a
// compressed section that does not decompress.
//
// Records are decoded only when a rule needs them: on a compacted topic,
// for a batch claiming LogAppendTime, for a finite
// message.timestamp.before.max.ms (the header bounds no record's timestamp
// from below: timestamp deltas may be negative), and for a finite
// message.timestamp.after.max.ms only when the header's MaxTimestamp is
// itself too late. That trusts MaxTimestamp to bound the records, as the
// log's time index and retention do; a batch whose MaxTimestamp understates
// its records passes the upper bound here where Kafka, which recomputes
// MaxTimestamp, would refuse it. Decoding allocates nothing per record.
func (r *RecordRules) Check(b []byte, h Header) error {
	if !r.needsRecords(h) {
		return nil
	}
	section := b[HeaderSize:h.TotalSize()]
	compressed := h.Codec() != CodecNone
	if compressed {
		raw, err := decompress(h.Codec(), section, MaxDecompressedSize)
		if err != nil {
			return err
		}
		section = raw
	}
	var (
		errs     []RecordError
		badTime  bool
		keyError string // built once, at the first keyless record
	)
	d := decoder{b: section}
	for i := int32(0); i < h.NumRecords; i++ {
		m, err := d.recordMeta()
		if err != nil {
			return fmt.Errorf("%w: record %d does not decode: %v", ErrInvalidRecord, i, err)
		}
		if r.RequireKeys && m.keyLen < 0 {
			if keyError == "" {
				keyError = "Compacted topic cannot accept message without key in topic partition " + r.topicPartition()
			}
			errs = append(errs, RecordError{Index: i, Message: keyError})
			continue
		}
		ts := h.FirstTimestamp + m.tsDelta
		if h.LogAppendTime() {
			ts = h.MaxTimestamp
		}
		offset := h.BaseOffset + int64(m.offsetDelta)
		if !r.LogAppendTime && ts != NoTimestamp {
			if r.outOfRange(ts) {
				badTime = true
				errs = append(errs, RecordError{Index: i, Message: "Timestamp " + strconv.FormatInt(ts, 10) +
					" of message with offset " + strconv.FormatInt(offset, 10) +
					" is out of range. The timestamp should be within [" + strconv.FormatInt(r.Now-r.TimestampBeforeMaxMs, 10) +
					", " + strconv.FormatInt(r.Now+r.TimestampAfterMaxMs, 10) + "]"})
			}
		} else if h.LogAppendTime() {
			badTime = true
			errs = append(errs, RecordError{Index: i, Message: "Invalid timestamp type in message " +
				recordString(compressed, offset, ts, m) + ". Producer should not set timestamp type to LogAppendTime."})
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalidRecord, len(d.b), h.NumRecords)
	}
	if len(errs) == 0 {
		return nil
	}
	e := &RecordErrors{Err: ErrInvalidRecord, Records: errs}
	if badTime {
		e.Err = ErrInvalidTimestamp
	}
	return e
}

// needsRecords reports whether a rule may refuse a record of the batch
// that its header alone cannot clear.
func (r *RecordRules) needsRecords(h Header) bool {
	switch {
	case r.RequireKeys, h.LogAppendTime():
		return true
	case r.LogAppendTime:
		return false
	case r.TimestampBeforeMaxMs != math.MaxInt64:
		return true
	}
	return r.TimestampAfterMaxMs != math.MaxInt64 && r.outOfRange(h.MaxTimestamp)
}

// outOfRange is Kafka's LogValidator.recordHasInvalidTimestamp, with its
// arithmetic (and its wrap-around) kept.
func (r *RecordRules) outOfRange(ts int64) bool {
	diff := r.Now - ts
	return diff > r.TimestampBeforeMaxMs || -diff > r.TimestampAfterMaxMs
}

func (r *RecordRules) topicPartition() string {
	return r.Topic + "-" + strconv.FormatInt(int64(r.Partition), 10)
}

// recordString prints a record as Kafka's Record.toString does in the
// LogAppendTime message: a compressed batch is read without its keys and
// values (PartialDefaultRecord, sizes -1 when null), an uncompressed one
// whole (DefaultRecord, null printed as 0 bytes).
func recordString(compressed bool, offset, ts int64, m recordMeta) string {
	if compressed {
		return fmt.Sprintf("PartialDefaultRecord(offset=%d, timestamp=%d, key=%d bytes, value=%d bytes)", offset, ts, m.keyLen, m.valueLen)
	}
	return fmt.Sprintf("DefaultRecord(offset=%d, timestamp=%d, key=%d bytes, value=%d bytes)", offset, ts, max(m.keyLen, 0), max(m.valueLen, 0))
}

// recordMeta is what the record rules read of a record.
type recordMeta struct {
	tsDelta          int64
	offsetDelta      int32
	keyLen, valueLen int32 // -1 when null
}

// recordMeta decodes one record as record does, with the same checks, but
// skips its key, value and headers instead of slicing or copying them.
func (d *decoder) recordMeta() (recordMeta, error) {
	length, err := d.varint()
	if err != nil {
		return recordMeta{}, err
	}
	if length < 0 || int(length) > len(d.b) {
		return recordMeta{}, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, length, len(d.b))
	}
	body := decoder{b: d.b[:length]}
	d.b = d.b[length:]
	if len(body.b) < 1 {
		return recordMeta{}, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	body.b = body.b[1:] // attributes, unused
	var m recordMeta
	if m.tsDelta, err = body.varlong(); err != nil {
		return recordMeta{}, err
	}
	if m.offsetDelta, err = body.varint(); err != nil {
		return recordMeta{}, err
	}
	if m.keyLen, err = body.skipBytes(true); err != nil {
		return recordMeta{}, err
	}
	if m.valueLen, err = body.skipBytes(true); err != nil {
		return recordMeta{}, err
	}
	nh, err := body.varint()
	if err != nil {
		return recordMeta{}, err
	}
	if nh < 0 || int(nh) > len(body.b)/2 {
		return recordMeta{}, fmt.Errorf("%w: %d headers with %d bytes left", ErrCorrupt, nh, len(body.b))
	}
	for i := int32(0); i < nh; i++ {
		if _, err := body.skipBytes(false); err != nil {
			return recordMeta{}, fmt.Errorf("header %d key: %w", i, err)
		}
		if _, err := body.skipBytes(true); err != nil {
			return recordMeta{}, fmt.Errorf("header %d value: %w", i, err)
		}
	}
	if len(body.b) != 0 {
		return recordMeta{}, fmt.Errorf("%w: record declared %d bytes, %d unread", ErrCorrupt, length, len(body.b))
	}
	return m, nil
}

// skipBytes is bytes without the result: it returns the length read, -1
// for null.
func (d *decoder) skipBytes(allowNull bool) (int32, error) {
	n, err := d.varint()
	if err != nil {
		return 0, err
	}
	if n == -1 && allowNull {
		return -1, nil
	}
	if n < 0 || int(n) > len(d.b) {
		return 0, fmt.Errorf("%w: field length %d with %d bytes left", ErrCorrupt, n, len(d.b))
	}
	d.b = d.b[n:]
	return n, nil
}

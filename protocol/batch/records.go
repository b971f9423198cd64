package batch

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Record is one decoded record with its absolute offset and timestamp.
//
// Key, Value and header values alias either the caller's buffer (uncompressed
// batches) or a buffer freshly decompressed for the batch; they stay valid
// after the callback returns but change if the caller later rewrites its
// buffer. Key and Value are nil when their length is -1 (null), and non-nil
// but empty when the length is 0.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// RecordHeader is one record header. Value is nil for a null value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// ForEachRecord decodes every record of the concatenated batches in b and
// calls fn with each; fn returns false to stop early. Compressed batches are
// decompressed first. A record's offset is BaseOffset+offsetDelta (after
// compaction offsets inside a batch may have gaps) and its timestamp is
// FirstTimestamp+timestampDelta, or MaxTimestamp for LogAppendTime batches.
//
// It does not check CRCs (Validate does); it checks structure. Every
// declared length is checked against the bytes that remain before anything is
// allocated, so malformed input yields ErrCorrupt (or ErrTooLarge for a
// decompression bomb, ErrUnsupportedMagic for old formats), never a panic.
func ForEachRecord(b []byte, fn func(Record) bool) error {
	for pos := 0; pos < len(b); {
		h, err := ParseHeader(b[pos:])
		if err != nil {
			return fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		size := h.TotalSize()
		if size > len(b)-pos {
			return fmt.Errorf("%w: batch at byte %d claims %d bytes, %d remain", ErrCorrupt, pos, size, len(b)-pos)
		}
		more, err := forEachInBatch(h, b[pos+HeaderSize:pos+size], fn)
		if err != nil {
			return fmt.Errorf("batch at offset %d (byte %d): %w", h.BaseOffset, pos, err)
		}
		if !more {
			return nil
		}
		pos += size
	}
	return nil
}

// forEachInBatch decodes the records section of one batch. It reports false
// when fn asked to stop.
func forEachInBatch(h Header, section []byte, fn func(Record) bool) (bool, error) {
	if h.NumRecords < 0 {
		return false, fmt.Errorf("%w: negative record count %d", ErrCorrupt, h.NumRecords)
	}
	c := h.Codec()
	if c != CodecNone {
		raw, err := decompress(c, section, MaxDecompressedSize)
		if err != nil {
			return false, err
		}
		section = raw
	}
	d := decoder{b: section}
	for i := int32(0); i < h.NumRecords; i++ {
		r, err := d.record(h)
		if err != nil {
			return false, fmt.Errorf("record %d: %w", i, err)
		}
		if !fn(r) {
			return false, nil
		}
	}
	if len(d.b) != 0 {
		return false, fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, len(d.b), h.NumRecords)
	}
	return true, nil
}

// decoder consumes a records section from the front.
type decoder struct{ b []byte }

func (d *decoder) varlong() (int64, error) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varlong", ErrCorrupt)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) varint() (int32, error) {
	v, n := binary.Varint(d.b)
	if n <= 0 || n > 5 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: bad varint", ErrCorrupt)
	}
	d.b = d.b[n:]
	return int32(v), nil
}

// bytes reads a varint length and that many bytes; -1 gives nil. allowNull
// false rejects -1 (header keys may not be null).
func (d *decoder) bytes(allowNull bool) ([]byte, error) {
	n, err := d.varint()
	if err != nil {
		return nil, err
	}
	if n == -1 && allowNull {
		return nil, nil
	}
	if n < 0 || int(n) > len(d.b) {
		return nil, fmt.Errorf("%w: field length %d with %d bytes left", ErrCorrupt, n, len(d.b))
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

// record decodes one record and checks that it used exactly the bytes its
// length prefix declared.
func (d *decoder) record(h Header) (Record, error) {
	length, err := d.varint()
	if err != nil {
		return Record{}, err
	}
	if length < 0 || int(length) > len(d.b) {
		return Record{}, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, length, len(d.b))
	}
	body := decoder{b: d.b[:length]}
	d.b = d.b[length:]
	if len(body.b) < 1 {
		return Record{}, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	body.b = body.b[1:] // attributes, unused
	tsDelta, err := body.varlong()
	if err != nil {
		return Record{}, err
	}
	offDelta, err := body.varint()
	if err != nil {
		return Record{}, err
	}
	r := Record{Offset: h.BaseOffset + int64(offDelta), Timestamp: h.FirstTimestamp + tsDelta}
	if h.LogAppendTime() {
		r.Timestamp = h.MaxTimestamp
	}
	if r.Key, err = body.bytes(true); err != nil {
		return Record{}, err
	}
	if r.Value, err = body.bytes(true); err != nil {
		return Record{}, err
	}
	nh, err := body.varint()
	if err != nil {
		return Record{}, err
	}
	// A header takes at least two bytes (two length varints), which bounds
	// the slice before it is allocated.
	if nh < 0 || int(nh) > len(body.b)/2 {
		return Record{}, fmt.Errorf("%w: %d headers with %d bytes left", ErrCorrupt, nh, len(body.b))
	}
	if nh > 0 {
		r.Headers = make([]RecordHeader, nh)
		for i := range r.Headers {
			k, err := body.bytes(false)
			if err != nil {
				return Record{}, fmt.Errorf("header %d key: %w", i, err)
			}
			v, err := body.bytes(true)
			if err != nil {
				return Record{}, fmt.Errorf("header %d value: %w", i, err)
			}
			r.Headers[i] = RecordHeader{Key: string(k), Value: v}
		}
	}
	if len(body.b) != 0 {
		return Record{}, fmt.Errorf("%w: record declared %d bytes, %d unread", ErrCorrupt, length, len(body.b))
	}
	return r, nil
}

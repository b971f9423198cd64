package storage

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/kbroker/kbroker/protocol/batch"
)

// offsetMap is the cleaner's key → latest offset map with a fixed memory
// budget, like Kafka's SkimpyOffsetMap: keys are stored as their 16-byte MD5
// (a collision between two live keys is as unlikely as in Kafka), in an
// open-addressing table of 24-byte slots filled to at most 90% (Kafka's
// log.cleaner.io.buffer.load.factor). When it is full the cleaner stops
// reading keys and cleans what it has; the next pass starts there.
type offsetMap struct {
	slots []byte // nslots × (16-byte hash, 8-byte offset+1; 0 = empty)
	n     int    // slots in use
	limit int    // n may not pass it
}

const mapSlotSize = md5.Size + 8

// newOffsetMap allocates a map of at most memBytes, and no larger than
// maxKeys keys need.
func newOffsetMap(memBytes, maxKeys int64) *offsetMap {
	nslots := memBytes / mapSlotSize
	if want := maxKeys + maxKeys/9 + 2; want < nslots {
		nslots = want
	}
	nslots = max(nslots, 2)
	return &offsetMap{slots: make([]byte, nslots*mapSlotSize), limit: max(int(nslots*9/10), 1)}
}

// bytes is the memory the table takes.
func (m *offsetMap) bytes() int64 { return int64(len(m.slots)) }

// find returns the slot of hash h, or the empty slot where it would go.
func (m *offsetMap) find(h *[md5.Size]byte) (slot []byte, found bool) {
	nslots := uint64(len(m.slots) / mapSlotSize)
	i := binary.BigEndian.Uint64(h[:8]) % nslots
	for {
		s := m.slots[i*mapSlotSize : (i+1)*mapSlotSize]
		if binary.BigEndian.Uint64(s[md5.Size:]) == 0 {
			return s, false
		}
		if [md5.Size]byte(s[:md5.Size]) == *h {
			return s, true
		}
		i = (i + 1) % nslots
	}
}

// put records offset as the latest of key. It reports false, storing
// nothing, when key is new and the map is full.
func (m *offsetMap) put(key []byte, offset int64) bool {
	h := md5.Sum(key)
	s, found := m.find(&h)
	if !found {
		if m.n >= m.limit {
			return false
		}
		m.n++
		copy(s, h[:])
	}
	binary.BigEndian.PutUint64(s[md5.Size:], uint64(offset)+1)
	return true
}

// get returns the latest offset recorded for key.
func (m *offsetMap) get(key []byte) (int64, bool) {
	h := md5.Sum(key)
	s, found := m.find(&h)
	if !found {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(s[md5.Size:])) - 1, true
}

// Header field positions (package protocol/batch documents the layout) the
// cleaner rewrites, and the attribute bit Kafka sets on a batch whose
// FirstTimestamp holds a delete horizon (KIP-534).
const (
	hdrLength         = 8
	hdrCRC            = 17
	hdrAttributes     = 21
	hdrFirstTimestamp = 27
	hdrMaxTimestamp   = 35
	hdrNumRecords     = 57

	attrCodecMask     = 0x07
	attrDeleteHorizon = 0x40
)

// rawRecord is one record of a decompressed records section, split just
// enough to filter it and to re-encode it with another timestamp delta.
type rawRecord struct {
	raw      []byte // the whole record, length prefix included
	attrs    byte
	tsDelta  int64
	offDelta int32
	tail     []byte // key length onwards, verbatim
	key      []byte // nil for a null key
	null     bool   // the value is null: a tombstone
}

// splitRecord reads the record at the front of b.
func splitRecord(b []byte) (rawRecord, int, error) {
	bad := func(what string) (rawRecord, int, error) {
		return rawRecord{}, 0, fmt.Errorf("%w: record %s", batch.ErrCorrupt, what)
	}
	length, n := binary.Varint(b)
	if n <= 0 || length < 1 || length > int64(len(b)-n) {
		return bad("length")
	}
	total := n + int(length)
	r := rawRecord{raw: b[:total], attrs: b[n]}
	body := b[n+1 : total]
	var k int
	if r.tsDelta, k = binary.Varint(body); k <= 0 {
		return bad("timestamp delta")
	}
	body = body[k:]
	od, k := binary.Varint(body)
	if k <= 0 || od < math.MinInt32 || od > math.MaxInt32 {
		return bad("offset delta")
	}
	r.offDelta, body = int32(od), body[k:]
	r.tail = body
	kl, k := binary.Varint(body)
	if k <= 0 || kl < -1 || kl > int64(len(body)-k) {
		return bad("key length")
	}
	body = body[k:]
	if kl >= 0 {
		r.key, body = body[:kl:kl], body[kl:]
	}
	vl, k := binary.Varint(body)
	if k <= 0 || vl < -1 || vl > int64(len(body)-k) {
		return bad("value length")
	}
	r.null = vl == -1
	return r, total, nil
}

// forEachRaw calls fn with every record of the batch b (header h),
// decompressing it first.
func forEachRaw(b []byte, h batch.Header, fn func(rawRecord) bool) error {
	section := b[batch.HeaderSize:]
	if c := h.Codec(); c != batch.CodecNone {
		var err error
		if section, err = batch.Decompress(c, section); err != nil {
			return err
		}
	}
	for i := int32(0); i < h.NumRecords; i++ {
		r, n, err := splitRecord(section)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		section = section[n:]
		if !fn(r) {
			return nil
		}
	}
	if len(section) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", batch.ErrCorrupt, len(section), h.NumRecords)
	}
	return nil
}

// batchFilter decides, batch by batch, what a cleaning pass keeps.
type batchFilter struct {
	keys   *offsetMap
	mapEnd int64 // records at or above it were not read into keys: kept
	nowMs  int64
	// newHorizon is the delete horizon given to a batch whose tombstones
	// are cleaned for the first time: now + delete.retention.ms.
	newHorizon int64
	// lastOfProducer holds the last offset of each producer's last data
	// batch in the log, whose batch stays even when emptied.
	lastOfProducer map[int64]int64

	minHorizon     int64 // earliest delete horizon of a kept tombstone, -1 none
	recordsRemoved int64
	batchesRemoved int64
}

// filter returns what the cleaned segment gets for batch b with header h:
// b itself when nothing changes, a rewritten batch, or nil to drop it.
//
// Kafka's rules: control batches and transactional batches are kept whole
// (their records are not in the key map either, so an aborted write never
// hides an older value). A record goes when its key is null or a later
// record has the same key; a tombstone kept for the first time gives its
// batch a delete horizon (attribute bit 6, FirstTimestamp = now +
// delete.retention.ms, record timestamp deltas re-based), and goes at the
// first cleaning after that horizon. A rewritten batch keeps its base
// offset, last offset delta, producer fields and codec; its max timestamp
// is the largest kept record's (or the append time) and its CRC is
// recomputed. A batch left with no record is dropped, unless it is its
// producer's last data batch: that one stays as an empty batch so that the
// producer's sequence and epoch survive for idempotence.
func (f *batchFilter) filter(b []byte, h batch.Header) ([]byte, error) {
	if h.IsControl() || h.IsTransactional() {
		return b, nil
	}
	hasHorizon := h.Attributes&attrDeleteHorizon != 0
	var (
		kept        []rawRecord
		dropped     int64
		needHorizon bool
		keptTomb    bool
		maxTS       = int64(-1)
	)
	err := forEachRaw(b, h, func(r rawRecord) bool {
		off := h.BaseOffset + int64(r.offDelta)
		keep := true
		switch {
		case off >= f.mapEnd:
		case r.key == nil:
			keep = false
		default:
			if latest, ok := f.keys.get(r.key); ok && latest > off {
				keep = false
			} else if r.null && hasHorizon {
				keep = f.nowMs < h.FirstTimestamp
			}
		}
		if !keep {
			dropped++
			return true
		}
		if r.null {
			keptTomb = true
			needHorizon = needHorizon || !hasHorizon
		}
		maxTS = max(maxTS, h.FirstTimestamp+r.tsDelta)
		kept = append(kept, r)
		return true
	})
	if err != nil {
		return nil, err
	}
	f.recordsRemoved += dropped
	if keptTomb {
		horizon := h.FirstTimestamp
		if needHorizon {
			horizon = f.newHorizon
		}
		if f.minHorizon < 0 || horizon < f.minHorizon {
			f.minHorizon = horizon
		}
	}
	switch {
	case dropped == 0 && !needHorizon:
		return b, nil
	case len(kept) == 0:
		if h.ProducerID >= 0 && f.lastOfProducer[h.ProducerID] == h.LastOffset() {
			return emptyBatch(b, h), nil
		}
		f.batchesRemoved++
		return nil, nil
	}

	first, attrs := h.FirstTimestamp, h.Attributes
	if needHorizon {
		first, attrs = f.newHorizon, attrs|attrDeleteHorizon
	}
	var raw []byte
	for _, r := range kept {
		if first == h.FirstTimestamp {
			raw = append(raw, r.raw...)
			continue
		}
		// Re-base the timestamp delta on the new FirstTimestamp so the
		// record's own timestamp does not change.
		var body []byte
		body = append(body, r.attrs)
		body = binary.AppendVarint(body, h.FirstTimestamp+r.tsDelta-first)
		body = binary.AppendVarint(body, int64(r.offDelta))
		body = append(body, r.tail...)
		raw = binary.AppendVarint(raw, int64(len(body)))
		raw = append(raw, body...)
	}
	if h.LogAppendTime() {
		maxTS = h.MaxTimestamp
	}
	section := raw
	if c := h.Codec(); c != batch.CodecNone {
		if section, err = batch.Compress(c, raw); err != nil {
			return nil, fmt.Errorf("recompress batch at offset %d: %w", h.BaseOffset, err)
		}
	}
	if len(section) > math.MaxInt32-batch.HeaderSize {
		return nil, fmt.Errorf("%w: rewritten batch at offset %d too large", batch.ErrTooLarge, h.BaseOffset)
	}
	out := make([]byte, batch.HeaderSize, batch.HeaderSize+len(section))
	copy(out, b[:batch.HeaderSize])
	out = append(out, section...)
	binary.BigEndian.PutUint32(out[hdrLength:], uint32(len(out)-batch.LengthOverhead))
	binary.BigEndian.PutUint16(out[hdrAttributes:], uint16(attrs))
	binary.BigEndian.PutUint64(out[hdrFirstTimestamp:], uint64(first))
	binary.BigEndian.PutUint64(out[hdrMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint32(out[hdrNumRecords:], uint32(len(kept)))
	binary.BigEndian.PutUint32(out[hdrCRC:], batch.CRC(out))
	return out, nil
}

// emptyBatch is the header of b with no records, as Kafka's
// DefaultRecordBatch.writeEmptyHeader writes it: no codec, both timestamps
// the batch's max timestamp, offsets and producer fields unchanged.
func emptyBatch(b []byte, h batch.Header) []byte {
	out := append([]byte(nil), b[:batch.HeaderSize]...)
	binary.BigEndian.PutUint32(out[hdrLength:], batch.HeaderSize-batch.LengthOverhead)
	binary.BigEndian.PutUint16(out[hdrAttributes:], uint16(h.Attributes&^(attrCodecMask|attrDeleteHorizon)))
	binary.BigEndian.PutUint64(out[hdrFirstTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint32(out[hdrNumRecords:], 0)
	binary.BigEndian.PutUint32(out[hdrCRC:], batch.CRC(out))
	return out
}

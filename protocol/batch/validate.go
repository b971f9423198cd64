package batch

import "fmt"

// Validate walks a record set of one or more concatenated v2 batches, as a
// produce request or a replica fetch carries it, and returns their headers.
// For every batch it checks, in Kafka's order: magic 2
// (ErrUnsupportedMagic for 0 and 1, ErrCorrupt for others), a sane length that stays inside b with no partial
// batch trailing (ErrCorrupt), TotalSize <= maxBatchBytes (ErrTooLarge), the
// CRC-32C (ErrCorrupt), a known codec (ErrCorrupt), and NumRecords >= 1 and
// equal to LastOffsetDelta+1, which every producer batch satisfies
// (ErrInvalidRecord). An empty b yields no headers and no error.
//
// Produce-specific rules are left to the caller because they do not apply
// to replicated data: Kafka requires exactly one batch per partition from
// Produce v3 on, a BaseOffset of 0, and rejects control batches from clients.
func Validate(b []byte, maxBatchBytes int) ([]Header, error) {
	var hs []Header
	for pos := 0; pos < len(b); {
		h, err := ParseHeader(b[pos:])
		if err != nil {
			return nil, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		size := h.TotalSize()
		if size > len(b)-pos {
			return nil, fmt.Errorf("%w: batch at byte %d claims %d bytes, %d remain", ErrCorrupt, pos, size, len(b)-pos)
		}
		if size > maxBatchBytes {
			return nil, fmt.Errorf("%w: batch at byte %d is %d bytes, limit %d", ErrTooLarge, pos, size, maxBatchBytes)
		}
		one := b[pos : pos+size]
		if got := CRC(one); got != h.CRC {
			return nil, fmt.Errorf("%w: batch at byte %d: crc %08x, computed %08x", ErrCorrupt, pos, h.CRC, got)
		}
		if !h.Codec().Known() {
			return nil, fmt.Errorf("%w: batch at byte %d: unknown compression codec %d", ErrCorrupt, pos, h.Codec())
		}
		if h.LastOffsetDelta < 0 || h.NumRecords <= 0 || int64(h.NumRecords) != int64(h.LastOffsetDelta)+1 {
			return nil, fmt.Errorf("%w: batch at byte %d: %d records but last offset delta %d",
				ErrInvalidRecord, pos, h.NumRecords, h.LastOffsetDelta)
		}
		hs = append(hs, h)
		pos += size
	}
	return hs, nil
}

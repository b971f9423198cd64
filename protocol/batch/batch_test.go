package batch

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestParseHeaderFields(t *testing.T) {
	b := buildBatch(t, batchSpec{base: 42, firstTS: 1000, codec: CodecNone, attrs: attrTransactional,
		producerID: 7, epoch: 3, seq: 11, records: simpleRecords(5)})
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{BaseOffset: 42, Length: int32(len(b) - 12), PartitionLeaderEpoch: -1, Magic: 2,
		CRC: CRC(b), Attributes: attrTransactional, LastOffsetDelta: 4, FirstTimestamp: 1000,
		MaxTimestamp: 1040, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 11, NumRecords: 5}
	if h != want {
		t.Fatalf("header\n got %+v\nwant %+v", h, want)
	}
	if h.TotalSize() != len(b) || h.LastOffset() != 46 || h.NextOffset() != 47 {
		t.Fatalf("TotalSize %d LastOffset %d NextOffset %d", h.TotalSize(), h.LastOffset(), h.NextOffset())
	}
	if !h.IsTransactional() || h.IsControl() || h.LogAppendTime() || h.Codec() != CodecNone {
		t.Fatalf("attribute accessors wrong for %#x", h.Attributes)
	}
	if h.LastSequence() != 15 {
		t.Fatalf("LastSequence %d, want 15", h.LastSequence())
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := buildBatch(t, batchSpec{records: simpleRecords(1)})
	if _, err := ParseHeader(good[:HeaderSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short header: %v", err)
	}
	old := bytes.Clone(good)
	old[16] = 1
	if _, err := ParseHeader(old[:30]); !errors.Is(err, ErrUnsupportedMagic) {
		t.Fatalf("magic 1: %v", err)
	}
	for _, m := range []byte{3, 0xff} {
		bad := bytes.Clone(good)
		bad[16] = m
		if _, err := ParseHeader(bad); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupportedMagic) {
			t.Fatalf("magic %d (no format has it): %v, want ErrCorrupt", int8(m), err)
		}
	}
	short := bytes.Clone(good)
	short[8], short[9], short[10], short[11] = 0, 0, 0, 48
	if _, err := ParseHeader(short); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("length 48: %v", err)
	}
}

func TestLastSequenceWraps(t *testing.T) {
	for _, tc := range []struct {
		base, delta, want int32
	}{
		{-1, 3, -1},
		{0, 0, 0},
		{math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 1, 4, 2},
	} {
		h := Header{BaseSequence: tc.base, LastOffsetDelta: tc.delta}
		if got := h.LastSequence(); got != tc.want {
			t.Errorf("LastSequence(base %d, delta %d) = %d, want %d", tc.base, tc.delta, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	b1 := buildBatch(t, batchSpec{base: 0, records: simpleRecords(3)})
	b2 := buildBatch(t, batchSpec{base: 3, codec: CodecZstd, records: simpleRecords(4)})
	set := append(bytes.Clone(b1), b2...)
	hs, err := Validate(set, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].NumRecords != 3 || hs[1].NumRecords != 4 || hs[1].Codec() != CodecZstd {
		t.Fatalf("headers %+v", hs)
	}
	if hs, err := Validate(nil, 100); err != nil || len(hs) != 0 {
		t.Fatalf("empty: %v %v", hs, err)
	}

	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(set)) }
	cases := []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"flipped record byte", mutate(func(b []byte) []byte { b[len(b1)-2] ^= 0xff; return b }), 1 << 20, ErrCorrupt},
		{"flipped crc", mutate(func(b []byte) []byte { b[17] ^= 1; return b }), 1 << 20, ErrCorrupt},
		{"truncated tail", set[:len(set)-1], 1 << 20, ErrCorrupt},
		{"partial header", set[:len(b1)+20], 1 << 20, ErrCorrupt},
		{"too large", set, len(b2) - 1, ErrTooLarge},
		{"magic 1", mutate(func(b []byte) []byte { b[len(b1)+16] = 1; return b }), 1 << 20, ErrUnsupportedMagic},
		{"unknown codec", mutate(func(b []byte) []byte { b[22] |= 7; fixCRC(b[:len(b1)]); return b }), 1 << 20, ErrCorrupt},
		{"count mismatch", buildBatch(t, batchSpec{records: simpleRecords(3), numRecords: ptr[int32](2)}), 1 << 20, ErrInvalidRecord},
		{"zero records", buildBatch(t, batchSpec{numRecords: ptr[int32](0), lastDelta: ptr[int32](-1)}), 1 << 20, ErrInvalidRecord},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.b, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCodecsRoundTrip(t *testing.T) {
	recs := simpleRecords(50)
	recs[7].key = nil
	recs[8].value = nil
	recs[9].key = []byte{}
	recs[10].value = bytes.Repeat([]byte("compressible "), 5000) // spans several xerial blocks
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(c.String(), func(t *testing.T) {
			b := buildBatch(t, batchSpec{base: 100, firstTS: 5000, codec: c, records: recs})
			if _, err := Validate(b, 1<<20); err != nil {
				t.Fatal(err)
			}
			checkRecords(t, b, 100, 5000, recs)
		})
	}
}

// checkRecords decodes b and compares every record with recs.
func checkRecords(t *testing.T, b []byte, base, firstTS int64, recs []testRecord) {
	t.Helper()
	i := 0
	err := ForEachRecord(b, func(r Record) bool {
		if i >= len(recs) {
			t.Fatalf("more records than the %d encoded", len(recs))
		}
		w := recs[i]
		if r.Offset != base+int64(w.offsetDelta) || r.Timestamp != firstTS+w.tsDelta {
			t.Fatalf("record %d: offset %d ts %d", i, r.Offset, r.Timestamp)
		}
		if !bytes.Equal(r.Key, w.key) || (r.Key == nil) != (w.key == nil) {
			t.Fatalf("record %d: key %q, want %q", i, r.Key, w.key)
		}
		if !bytes.Equal(r.Value, w.value) || (r.Value == nil) != (w.value == nil) {
			t.Fatalf("record %d: value differs", i)
		}
		if len(r.Headers) != len(w.headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(r.Headers), len(w.headers))
		}
		for j, h := range w.headers {
			if r.Headers[j].Key != h.Key || !bytes.Equal(r.Headers[j].Value, h.Value) || (r.Headers[j].Value == nil) != (h.Value == nil) {
				t.Fatalf("record %d header %d: %+v, want %+v", i, j, r.Headers[j], h)
			}
		}
		i++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(recs) {
		t.Fatalf("decoded %d records, want %d", i, len(recs))
	}
}

func TestForeignCompressionFormats(t *testing.T) {
	raw := encodeRecords(simpleRecords(20))
	cases := map[string]struct {
		codec Codec
		data  []byte
	}{
		"raw snappy":    {CodecSnappy, snappyRaw(raw)},
		"stdlib gzip":   {CodecGzip, stdGzip(t, raw)},
		"xerial snappy": {CodecSnappy, mustCompress(t, CodecSnappy, raw)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := assemble(batchSpec{base: 9, codec: tc.codec, records: simpleRecords(20)}, tc.data)
			checkRecords(t, b, 9, 0, simpleRecords(20))
		})
	}
	// Our gzip must be readable by the standard library.
	if got := stdGunzip(t, mustCompress(t, CodecGzip, raw)); !bytes.Equal(got, raw) {
		t.Fatal("stdlib gunzip of our gzip differs")
	}
}

func TestDecompressLimit(t *testing.T) {
	raw := bytes.Repeat([]byte{0}, 4096)
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		z := mustCompress(t, c, raw)
		if _, err := decompress(c, z, 1000); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: over limit: %v", c, err)
		}
		got, err := decompress(c, z, 4096)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%s: at limit: %v", c, err)
		}
		if _, err := Decompress(c, z[:len(z)/2]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: truncated: %v", c, err)
		}
	}
	if _, err := Decompress(Codec(6), raw); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown codec: %v", err)
	}
}

func TestSetters(t *testing.T) {
	recs := simpleRecords(4)
	b := buildBatch(t, batchSpec{base: 0, firstTS: 1000, codec: CodecLZ4, records: recs})
	SetBaseOffset(b, 500)
	SetPartitionLeaderEpoch(b, 9)
	hs, err := Validate(b, 1<<20)
	if err != nil {
		t.Fatalf("offset and epoch must not need a new CRC: %v", err)
	}
	if hs[0].BaseOffset != 500 || hs[0].PartitionLeaderEpoch != 9 {
		t.Fatalf("header %+v", hs[0])
	}
	checkRecords(t, b, 500, 1000, recs)

	SetLogAppendTime(b, 77777)
	hs, err = Validate(b, 1<<20)
	if err != nil {
		t.Fatalf("after SetLogAppendTime: %v", err)
	}
	h := hs[0]
	if !h.LogAppendTime() || h.MaxTimestamp != 77777 || h.FirstTimestamp != 1000 || h.Codec() != CodecLZ4 {
		t.Fatalf("header after SetLogAppendTime %+v", h)
	}
	n := 0
	if err := ForEachRecord(b, func(r Record) bool {
		if r.Timestamp != 77777 {
			t.Fatalf("record %d timestamp %d, want log append time", r.Offset, r.Timestamp)
		}
		n++
		return true
	}); err != nil || n != 4 {
		t.Fatalf("ForEachRecord: %d records, %v", n, err)
	}
}

func TestForEachRecordGapsAndStop(t *testing.T) {
	// A compacted batch keeps its offset range but loses records.
	recs := []testRecord{{offsetDelta: 0, value: []byte("a")}, {offsetDelta: 5, value: []byte("b")}}
	b := buildBatch(t, batchSpec{base: 10, records: recs})
	var offs []int64
	if err := ForEachRecord(b, func(r Record) bool { offs = append(offs, r.Offset); return true }); err != nil {
		t.Fatal(err)
	}
	if len(offs) != 2 || offs[0] != 10 || offs[1] != 15 {
		t.Fatalf("offsets %v, want [10 15]", offs)
	}
	if _, err := Validate(b, 1<<20); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("a producer batch with gaps must be invalid: %v", err)
	}

	two := append(buildBatch(t, batchSpec{records: simpleRecords(3)}), buildBatch(t, batchSpec{base: 3, records: simpleRecords(3)})...)
	n := 0
	if err := ForEachRecord(two, func(Record) bool { n++; return n < 4 }); err != nil || n != 4 {
		t.Fatalf("stop after 4: n=%d err=%v", n, err)
	}
}

func TestForEachRecordCorrupt(t *testing.T) {
	recs := simpleRecords(3)
	raw := encodeRecords(recs)
	cases := map[string][]byte{
		"section cut":        raw[:len(raw)-3],
		"extra bytes":        append(bytes.Clone(raw), 0),
		"huge record length": append([]byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, raw...),
		"negative length":    append([]byte{0x01}, raw...),
		"bad varint":         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"header count bomb":  encodeBadHeaders(),
	}
	for name, section := range cases {
		t.Run(name, func(t *testing.T) {
			b := assemble(batchSpec{records: recs}, section)
			if err := ForEachRecord(b, func(Record) bool { return true }); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
	b := buildBatch(t, batchSpec{records: recs})
	if err := ForEachRecord(b[:len(b)-1], func(Record) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated batch: %v", err)
	}
	neg := bytes.Clone(b)
	neg[57], neg[58], neg[59], neg[60] = 0xff, 0xff, 0xff, 0xff
	if err := ForEachRecord(neg, func(Record) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("negative count: %v", err)
	}
}

// encodeBadHeaders encodes one record that claims a million headers.
func encodeBadHeaders() []byte {
	body := []byte{0, 0, 0, 1, 1}         // attrs, tsDelta 0, offDelta 0, key null(-1), value null(-1)
	body = append(body, 0x80, 0x89, 0x7a) // zig-zag varint 1_000_000
	out := []byte{byte(len(body) << 1)}
	return append(out, body...)
}

package batch

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/golang/snappy"
)

func mustCompress(t testing.TB, c Codec, raw []byte) []byte {
	t.Helper()
	z, err := Compress(c, raw)
	if err != nil {
		t.Fatalf("compress %s: %v", c, err)
	}
	return z
}

func snappyRaw(raw []byte) []byte { return snappy.Encode(nil, raw) }

func stdGzip(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func stdGunzip(t testing.TB, z []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fuzzSeeds returns valid batches of every codec plus a few broken shapes.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		b := buildBatch(f, batchSpec{base: 3, firstTS: 100, codec: c, records: simpleRecords(4)})
		seeds = append(seeds, b, b[:len(b)-5], b[:HeaderSize])
	}
	two := append(buildBatch(f, batchSpec{records: simpleRecords(2)}), buildBatch(f, batchSpec{base: 2, records: simpleRecords(1)})...)
	seeds = append(seeds, two, assemble(batchSpec{records: simpleRecords(1)}, snappyRaw(encodeRecords(simpleRecords(1)))), nil)
	return seeds
}

func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, 1<<20)
	}
	f.Fuzz(func(t *testing.T, b []byte, maxBytes int) {
		hs, err := Validate(b, maxBytes)
		if err != nil {
			return
		}
		total := 0
		for _, h := range hs {
			if h.TotalSize() > maxBytes || h.NumRecords < 1 {
				t.Fatalf("accepted %+v with max %d", h, maxBytes)
			}
			total += h.TotalSize()
		}
		if total != len(b) {
			t.Fatalf("headers cover %d of %d bytes", total, len(b))
		}
		// Anything Validate accepts must decode or fail cleanly.
		_ = ForEachRecord(b, func(Record) bool { return true })
	})
}

func FuzzForEachRecord(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = ForEachRecord(b, func(r Record) bool {
			n++
			return n < 1<<16
		})
	})
}

package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a record batch compression codec (attribute bits 0-2).
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// Known reports whether c is one of the five codecs Kafka defines.
func (c Codec) Known() bool { return c >= CodecNone && c <= CodecZstd }

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// MaxDecompressedSize bounds what one batch may decompress to. Kafka streams
// records out of a compressed batch; this package decompresses a batch into
// memory, so it refuses (ErrTooLarge) anything larger rather than let a small
// crafted batch allocate without limit. Real producers stay far below it:
// their batch.size bounds the uncompressed bytes of a batch.
const MaxDecompressedSize = 256 << 20

// xerialMagic opens the snappy framing written by snappy-java's
// SnappyOutputStream, which the Java client uses for Kafka's snappy codec.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16       // magic, int32 version, int32 compatible version
	xerialBlockSize  = 32 << 10 // snappy-java's default block size
)

// Decompress returns the decompressed form of src, a records section
// compressed with c. Errors wrap ErrCorrupt, or ErrTooLarge when the output
// would exceed MaxDecompressedSize.
func Decompress(c Codec, src []byte) ([]byte, error) {
	return decompress(c, src, MaxDecompressedSize)
}

func decompress(c Codec, src []byte, limit int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch c {
	case CodecNone:
		if len(src) > limit {
			return nil, fmt.Errorf("%w: %d bytes exceed limit %d", ErrTooLarge, len(src), limit)
		}
		return append([]byte(nil), src...), nil
	case CodecGzip:
		out, err = decompressGzip(src, limit)
	case CodecSnappy:
		out, err = decompressSnappy(src, limit)
	case CodecLZ4:
		out, err = decompressLZ4(src, limit)
	case CodecZstd:
		out, err = decompressZstd(src, limit)
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, c)
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
	}
	return out, nil
}

// readLimited drains r, failing with ErrTooLarge past limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(limit) {
		return nil, fmt.Errorf("%w: decompresses beyond %d bytes", ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

var gzipReaders sync.Pool // *gzip.Reader

func decompressGzip(src []byte, limit int) ([]byte, error) {
	var zr *gzip.Reader
	if v := gzipReaders.Get(); v != nil {
		zr = v.(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(src)); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = gzip.NewReader(bytes.NewReader(src)); err != nil {
			return nil, err
		}
	}
	out, err := readLimited(zr, limit)
	if err == nil {
		gzipReaders.Put(zr)
	}
	return out, err
}

func decompressSnappy(src []byte, limit int) ([]byte, error) {
	if len(src) < xerialHeaderSize || !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(nil, src, limit)
	}
	var out []byte
	for rest := src[xerialHeaderSize:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated xerial block length", ErrCorrupt)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: xerial block of %d bytes with %d left", ErrCorrupt, n, len(rest))
		}
		var err error
		if out, err = snappyBlock(out, rest[:n], limit); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst, checking
// the block's declared length against limit before allocating.
func snappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > limit-len(dst) {
		return nil, fmt.Errorf("%w: decompresses beyond %d bytes", ErrTooLarge, limit)
	}
	dec, err := snappy.Decode(nil, block)
	if err != nil {
		return nil, err
	}
	if dst == nil {
		return dec, nil
	}
	return append(dst, dec...), nil
}

var lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

func decompressLZ4(src []byte, limit int) ([]byte, error) {
	zr := lz4Readers.Get().(*lz4.Reader)
	zr.Reset(bytes.NewReader(src))
	out, err := readLimited(zr, limit)
	zr.Reset(nil)
	lz4Readers.Put(zr)
	return out, err
}

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdEnc  *zstd.Encoder
	zstdErr  error
)

// zstdCodecs builds the shared zstd decoder and encoder once; DecodeAll and
// EncodeAll are safe for concurrent use.
func zstdCodecs() (*zstd.Decoder, *zstd.Encoder, error) {
	zstdOnce.Do(func() {
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxDecompressedSize),
			zstd.WithDecoderConcurrency(0))
		if zstdErr != nil {
			return
		}
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	})
	return zstdDec, zstdEnc, zstdErr
}

func decompressZstd(src []byte, limit int) ([]byte, error) {
	dec, _, err := zstdCodecs()
	if err != nil {
		return nil, err
	}
	out, err := dec.DecodeAll(src, nil)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || (err == nil && len(out) > limit) {
		return nil, fmt.Errorf("%w: decompresses beyond %d bytes", ErrTooLarge, limit)
	}
	return out, err
}

// Compress compresses a records section with c. Snappy output uses the
// xerial framing the Java client writes, which every client reads; LZ4 output
// is the standard frame format; zstd a single frame.
func Compress(c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append([]byte(nil), src...), nil
	case CodecGzip:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(src); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return buf.Bytes(), nil
	case CodecSnappy:
		out := make([]byte, xerialHeaderSize, xerialHeaderSize+snappy.MaxEncodedLen(len(src))+4*(len(src)/xerialBlockSize+1))
		copy(out, xerialMagic)
		binary.BigEndian.PutUint32(out[8:], 1)
		binary.BigEndian.PutUint32(out[12:], 1)
		for rest := src; len(rest) > 0; {
			chunk := rest[:min(len(rest), xerialBlockSize)]
			rest = rest[len(chunk):]
			enc := snappy.Encode(nil, chunk)
			out = binary.BigEndian.AppendUint32(out, uint32(len(enc)))
			out = append(out, enc...)
		}
		return out, nil
	case CodecLZ4:
		var buf bytes.Buffer
		zw := lz4.NewWriter(&buf)
		if _, err := zw.Write(src); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return buf.Bytes(), nil
	case CodecZstd:
		_, enc, err := zstdCodecs()
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return enc.EncodeAll(src, nil), nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, c)
}

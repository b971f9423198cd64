// Package protocol reads and writes Kafka's wire framing: size-prefixed
// frames, request headers v0–v2 and response headers v0–v1. It does no I/O of
// its own beyond the io.Reader/io.Writer it is handed, and it never allocates
// from a length it has not checked against the bytes actually present.
//
// Frame layout (big-endian):
//
//	size int32 | body [size]byte
//
// Request header (body prefix):
//
//	v0: api_key int16 | api_version int16 | correlation_id int32
//	v1: v0 | client_id nullable string (int16 length, -1 = null)
//	v2: v1 | tagged fields (unsigned varint count, then tag/size/bytes)
//
// Response header:
//
//	v0: correlation_id int32
//	v1: v0 | tagged fields (always empty here)
//
// A request uses header v2 when its API version is flexible (KIP-482), v1
// otherwise. The ApiVersions response always uses header v0, even at its
// flexible versions, so that a client can parse it before it knows anything.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors; each means the connection must be closed.
var (
	ErrFrameTooLarge = errors.New("protocol: frame larger than socket.request.max.bytes")
	ErrNegativeSize  = errors.New("protocol: negative frame size")
	ErrShortHeader   = errors.New("protocol: request header truncated")
)

// ReadFrame reads one size-prefixed frame from r. buf is reused when it is
// large enough; the returned slice aliases it. A size above max is refused
// before any allocation so a lying length costs nothing.
func ReadFrame(r io.Reader, max int32, buf []byte) ([]byte, error) {
	return ReadFrameWith(r, max, buf, nil)
}

// ReadFrameWith is ReadFrame with alloc (when not nil) supplying the body
// buffer when buf is too small: it must return a slice of at least size
// capacity, whose contents are overwritten.
func ReadFrameWith(r io.Reader, max int32, buf []byte, alloc func(size int) []byte) ([]byte, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return buf, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	switch {
	case size < 0:
		return buf, fmt.Errorf("%w: %d", ErrNegativeSize, size)
	case size > max:
		return buf, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, max)
	}
	if cap(buf) < int(size) {
		if alloc != nil {
			buf = alloc(int(size))
		} else {
			buf = make([]byte, size)
		}
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, fmt.Errorf("protocol: read frame body of %d bytes: %w", size, err)
	}
	return buf, nil
}

// RequestHeader is the decoded header of one request.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string // empty when null
}

// PeekKeyVersion returns the API key and version of a frame body without
// decoding the rest, so the caller can decide which header version applies.
func PeekKeyVersion(body []byte) (key, version int16, err error) {
	if len(body) < 8 {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrShortHeader, len(body))
	}
	return int16(binary.BigEndian.Uint16(body)), int16(binary.BigEndian.Uint16(body[2:])), nil
}

// ParseRequestHeader decodes the request header at the front of body and
// returns the request's own bytes. flexible selects header v2 (tagged
// fields); otherwise header v1 is assumed, which every API Kafka 4.x serves
// uses.
func ParseRequestHeader(body []byte, flexible bool) (RequestHeader, []byte, error) {
	var h RequestHeader
	if len(body) < 10 {
		return h, nil, fmt.Errorf("%w: %d bytes", ErrShortHeader, len(body))
	}
	h.Key = int16(binary.BigEndian.Uint16(body))
	h.Version = int16(binary.BigEndian.Uint16(body[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(body[4:]))
	n := int16(binary.BigEndian.Uint16(body[8:]))
	rest := body[10:]
	if n >= 0 {
		if int(n) > len(rest) {
			return h, nil, fmt.Errorf("%w: client id of %d bytes, %d left", ErrShortHeader, n, len(rest))
		}
		h.ClientID = string(rest[:n])
		rest = rest[n:]
	} else if n != -1 {
		return h, nil, fmt.Errorf("%w: client id length %d", ErrShortHeader, n)
	}
	if flexible {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return h, nil, err
		}
	}
	return h, rest, nil
}

// skipTags skips a tagged-field section: a count, then for each field a tag
// and a size-prefixed value.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad tag count", ErrShortHeader)
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad tag", ErrShortHeader)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad tag size", ErrShortHeader)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// AppendResponseHeader starts a response frame in dst: a 4-byte size
// placeholder (filled by FinishFrame), the correlation ID and, for header v1,
// an empty tagged-field section.
func AppendResponseHeader(dst []byte, correlationID int32, flexible bool) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if flexible {
		dst = append(dst, 0)
	}
	return dst
}

// FinishFrame writes the frame size into the placeholder at frame[0:4],
// counting extra bytes that will follow frame on the wire (for responses
// whose record data is sent separately, straight from a file).
func FinishFrame(frame []byte, extra int) {
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4+extra))
}

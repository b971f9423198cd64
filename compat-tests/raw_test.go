package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn is a bare TCP connection for sending hand-made frames: it is how
// the bad-input tests reach the broker without a client library's checks.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialRaw(t *testing.T, b *Broker) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", b.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, corr: 100}
}

// write sends bytes as they are, with no size prefix added.
func (r *rawConn) write(p []byte) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(p); err != nil {
		r.t.Fatalf("write %d raw bytes: %v", len(p), err)
	}
}

// writeFrame prefixes body with its int32 length and sends it.
func (r *rawConn) writeFrame(body []byte) {
	r.t.Helper()
	r.write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	r.write(body)
}

// header builds a request header v1 (api key, version, correlation ID,
// client ID) and, when flexible, the empty tagged-field section of v2.
func (r *rawConn) header(key, version int16, flexible bool) []byte {
	r.corr++
	h := binary.BigEndian.AppendUint16(nil, uint16(key))
	h = binary.BigEndian.AppendUint16(h, uint16(version))
	h = binary.BigEndian.AppendUint32(h, uint32(r.corr))
	h = binary.BigEndian.AppendUint16(h, uint16(len("compat")))
	h = append(h, "compat"...)
	if flexible {
		h = append(h, 0)
	}
	return h
}

// send encodes req at its set version with kmsg and returns the correlation ID.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("compat"))
	r.write(f.AppendRequest(nil, req, r.corr))
	return r.corr
}

// readFrame reads one size-prefixed frame within d.
func (r *rawConn) readFrame(d time.Duration) ([]byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var sz [4]byte
	if _, err := io.ReadFull(r.c, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response frame size %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.c, buf); err != nil {
		return nil, fmt.Errorf("read %d-byte response body: %w", n, err)
	}
	return buf, nil
}

// roundTrip sends req and decodes the matching response; the response header
// is v0 for ApiVersions and v1 (tagged fields) for other flexible versions.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	body, err := r.readFrame(10 * time.Second)
	if err != nil {
		r.t.Fatalf("%s v%d: no response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	rest, err := r.parseHeader(body, corr, resp.IsFlexible() && req.Key() != 18)
	if err != nil {
		r.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if err := resp.ReadFrom(rest); err != nil {
		r.t.Fatalf("%s v%d: decode response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

// parseHeader checks the correlation ID and skips header tagged fields.
func (r *rawConn) parseHeader(body []byte, corr int32, flexible bool) ([]byte, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("response of %d bytes has no header", len(body))
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return nil, fmt.Errorf("correlation ID %d, want %d", got, corr)
	}
	body = body[4:]
	if !flexible {
		return body, nil
	}
	n, used := binary.Uvarint(body)
	if used <= 0 {
		return nil, errors.New("bad tagged-field count in response header")
	}
	body = body[used:]
	for i := uint64(0); i < n; i++ {
		_, u1 := binary.Uvarint(body)
		if u1 <= 0 {
			return nil, errors.New("bad tag in response header")
		}
		size, u2 := binary.Uvarint(body[u1:])
		if u2 <= 0 || uint64(len(body)) < uint64(u1+u2)+size {
			return nil, errors.New("bad tagged field in response header")
		}
		body = body[uint64(u1+u2)+size:]
	}
	return body, nil
}

// expectClosed asserts the broker closes the connection within d without
// answering. A reply or a still-open socket fails the test.
func (r *rawConn) expectClosed(d time.Duration, what string) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	n, err := r.c.Read(buf)
	switch {
	case n > 0:
		r.t.Fatalf("%s: broker answered %d bytes (%x…) instead of closing the connection, as Kafka does", what, n, buf[:min(n, 32)])
	case isClosed(err):
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		r.t.Fatalf("%s: connection still open after %v; Kafka closes it", what, d)
	default:
		r.t.Fatalf("%s: unexpected read error %v", what, err)
	}
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE)
}

// rawRecord is one record for buildBatch.
type rawRecord struct {
	key, value []byte
	headers    [][2]string
	tsDelta    int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// buildBatch encodes an uncompressed magic-2 record batch with base offset 0,
// no producer ID, CreateTime timestamps and a correct CRC-32C. Writing the
// bytes by hand (rather than through a client) lets tests corrupt them.
func buildBatch(firstTS int64, recs []rawRecord) []byte {
	return buildIdempotentBatch(firstTS, recs, -1, -1, -1)
}

// buildIdempotentBatch is buildBatch with a producer ID, epoch and base
// sequence (all -1 for a plain batch).
func buildIdempotentBatch(firstTS int64, recs []rawRecord, producerID int64, epoch int16, baseSeq int32) []byte {
	var records []byte
	var maxTS = firstTS
	for i, rr := range recs {
		var body []byte
		body = append(body, 0) // record attributes
		body = binary.AppendVarint(body, rr.tsDelta)
		body = binary.AppendVarint(body, int64(i))
		body = appendVarBytes(body, rr.key)
		body = appendVarBytes(body, rr.value)
		body = binary.AppendVarint(body, int64(len(rr.headers)))
		for _, h := range rr.headers {
			body = appendVarBytes(body, []byte(h[0]))
			body = appendVarBytes(body, []byte(h[1]))
		}
		records = binary.AppendVarint(records, int64(len(body)))
		records = append(records, body...)
		maxTS = max(maxTS, firstTS+rr.tsDelta)
	}
	// Everything from attributes onwards is covered by the CRC.
	var tail []byte
	tail = binary.BigEndian.AppendUint16(tail, 0)                   // attributes
	tail = binary.BigEndian.AppendUint32(tail, uint32(len(recs)-1)) // last offset delta
	tail = binary.BigEndian.AppendUint64(tail, uint64(firstTS))
	tail = binary.BigEndian.AppendUint64(tail, uint64(maxTS))
	tail = binary.BigEndian.AppendUint64(tail, uint64(producerID))
	tail = binary.BigEndian.AppendUint16(tail, uint16(epoch))
	tail = binary.BigEndian.AppendUint32(tail, uint32(baseSeq))
	tail = binary.BigEndian.AppendUint32(tail, uint32(len(recs)))
	tail = append(tail, records...)

	var out []byte
	out = binary.BigEndian.AppendUint64(out, 0)                       // base offset
	out = binary.BigEndian.AppendUint32(out, uint32(4+1+4+len(tail))) // batch length
	out = binary.BigEndian.AppendUint32(out, ^uint32(0))              // partition leader epoch -1
	out = append(out, 2)                                              // magic
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(tail, castagnoli))
	return append(out, tail...)
}

func appendVarBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

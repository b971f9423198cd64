package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/kbroker/kbroker/protocol"
)

// The Fetch response is encoded here rather than by kmsg so that record
// bytes can go from the segment file to the socket with sendfile, never
// passing through user space. The layout is Kafka's (and kmsg's) byte for
// byte; fetch_wire_test.go checks that against kmsg for every version.

// fetchResponseHeader is the response-level part of a Fetch response.
type fetchResponseHeader struct {
	version   int16
	errorCode int16
	sessionID int32
	topics    []fetchTopicOut
	// nodeEndpoints are the brokers the partitions' leader hints name
	// (KIP-951, v16+; tag 0 of the response).
	nodeEndpoints []hintNode
}

type fetchTopicOut struct {
	name  string
	id    [16]byte
	parts []*fetchPart
}

// wireChunk is either encoded bytes or a section of a segment file.
type wireChunk struct {
	bytes []byte
	file  *os.File
	pos   int64
	size  int
}

// wireResponse is an encoded response whose record data may still be in
// files; release must be called once it is written or dropped.
type wireResponse struct {
	flexibleHeader bool
	chunks         []wireChunk
	size           int
	holds          []fetchPart
}

func (w *wireResponse) release() { releaseAll(w.holds) }

// encodeFetchResponse lays the response out as chunks. results are held
// (their files kept open) until release; results not in resp are released
// by the caller's release too.
func encodeFetchResponse(resp fetchResponseHeader, results []fetchPart) *wireResponse {
	v := resp.version
	flex := v >= 12
	w := &wireResponse{flexibleHeader: flex, holds: results}
	var buf []byte
	flush := func() {
		if len(buf) > 0 {
			w.chunks = append(w.chunks, wireChunk{bytes: buf})
			w.size += len(buf)
			buf = nil
		}
	}
	arrayLen := func(n int) {
		if flex {
			buf = binary.AppendUvarint(buf, uint64(n+1))
		} else {
			buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		}
	}
	buf = binary.BigEndian.AppendUint32(buf, 0) // throttle_time_ms (v1+)
	if v >= 7 {
		buf = binary.BigEndian.AppendUint16(buf, uint16(resp.errorCode))
		buf = binary.BigEndian.AppendUint32(buf, uint32(resp.sessionID))
	}
	arrayLen(len(resp.topics))
	for _, t := range resp.topics {
		if v <= 12 {
			if flex {
				buf = binary.AppendUvarint(buf, uint64(len(t.name)+1))
			} else {
				buf = binary.BigEndian.AppendUint16(buf, uint16(len(t.name)))
			}
			buf = append(buf, t.name...)
		} else {
			buf = append(buf, t.id[:]...)
		}
		arrayLen(len(t.parts))
		for _, fp := range t.parts {
			buf = binary.BigEndian.AppendUint32(buf, uint32(fp.sp.partition))
			buf = binary.BigEndian.AppendUint16(buf, uint16(fp.errCode))
			buf = binary.BigEndian.AppendUint64(buf, uint64(fp.highWatermark))
			buf = binary.BigEndian.AppendUint64(buf, uint64(fp.lastStableOffset)) // v4+
			if v >= 5 {
				buf = binary.BigEndian.AppendUint64(buf, uint64(fp.logStartOffset))
			}
			// aborted_transactions (v4+): null unless read_committed.
			switch {
			case !fp.readCommitted && flex:
				buf = append(buf, 0)
			case !fp.readCommitted:
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
			default:
				arrayLen(len(fp.aborted))
				for _, a := range fp.aborted {
					buf = binary.BigEndian.AppendUint64(buf, uint64(a.ProducerID))
					buf = binary.BigEndian.AppendUint64(buf, uint64(a.FirstOffset))
					if flex {
						buf = append(buf, 0)
					}
				}
			}
			if v >= 11 {
				buf = binary.BigEndian.AppendUint32(buf, uint32(fp.preferredReadReplica))
			}
			n := fp.data.Size
			if flex {
				buf = binary.AppendUvarint(buf, uint64(n+1))
			} else {
				buf = binary.BigEndian.AppendUint32(buf, uint32(n))
			}
			if n > 0 {
				flush()
				w.chunks = append(w.chunks, wireChunk{file: fp.data.File, pos: fp.data.Pos, size: n})
				w.size += n
			}
			if flex {
				// Partition tagged fields: DivergingEpoch (tag 0) for a
				// follower that must truncate, CurrentLeader (tag 1)
				// after a leadership error.
				n := 0
				if fp.diverging != nil {
					n++
				}
				if fp.currentLeader != nil {
					n++
				}
				buf = append(buf, byte(n))
				if d := fp.diverging; d != nil {
					buf = append(buf, 0, 13)
					buf = binary.BigEndian.AppendUint32(buf, uint32(d.Epoch))
					buf = binary.BigEndian.AppendUint64(buf, uint64(d.EndOffset))
					buf = append(buf, 0)
				}
				if l := fp.currentLeader; l != nil {
					buf = append(buf, 1, 9)
					buf = binary.BigEndian.AppendUint32(buf, uint32(l.id))
					buf = binary.BigEndian.AppendUint32(buf, uint32(l.epoch))
					buf = append(buf, 0)
				}
			}
		}
		if flex {
			buf = append(buf, 0) // topic tagged fields
		}
	}
	if flex {
		// Response tagged fields: NodeEndpoints (tag 0, v16+).
		if len(resp.nodeEndpoints) == 0 {
			buf = append(buf, 0)
		} else {
			var nodes []byte
			nodes = binary.AppendUvarint(nodes, uint64(len(resp.nodeEndpoints)+1))
			for _, n := range resp.nodeEndpoints {
				nodes = binary.BigEndian.AppendUint32(nodes, uint32(n.id))
				nodes = binary.AppendUvarint(nodes, uint64(len(n.host)+1))
				nodes = append(nodes, n.host...)
				nodes = binary.BigEndian.AppendUint32(nodes, uint32(n.port))
				if n.rack == nil {
					nodes = append(nodes, 0)
				} else {
					nodes = binary.AppendUvarint(nodes, uint64(len(*n.rack)+1))
					nodes = append(nodes, *n.rack...)
				}
				nodes = append(nodes, 0) // node tagged fields
			}
			buf = append(buf, 1, 0)
			buf = binary.AppendUvarint(buf, uint64(len(nodes)))
			buf = append(buf, nodes...)
		}
	}
	flush()
	return w
}

// writeTo sends the response frame: header and encoded parts through the
// buffered writer, file sections with sendfile straight to the socket.
func (w *wireResponse) writeTo(nc net.Conn, bw *bufio.Writer, correlationID int32) error {
	defer w.release()
	hdr := protocol.AppendResponseHeader(make([]byte, 0, 9), correlationID, w.flexibleHeader)
	protocol.FinishFrame(hdr, w.size)
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	for _, ch := range w.chunks {
		if ch.file == nil {
			if _, err := bw.Write(ch.bytes); err != nil {
				return err
			}
			continue
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := sendFile(nc, ch.file, ch.pos, ch.size); err != nil {
			return err
		}
	}
	return nil
}

// sendFile copies size bytes at pos of f to the connection. It uses the
// sendfile system call with an explicit offset, so concurrent senders of the
// same file do not disturb each other, and falls back to pread+write.
func sendFile(nc net.Conn, f *os.File, pos int64, size int) error {
	tc, ok := nc.(*net.TCPConn)
	if ok {
		if err := sendFileTCP(tc, f, pos, size); !errors.Is(err, errNoSendfile) {
			return err
		}
	}
	buf := make([]byte, min(size, 1<<20))
	for size > 0 {
		n := min(size, len(buf))
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if _, err := nc.Write(buf[:n]); err != nil {
			return err
		}
		pos += int64(n)
		size -= n
	}
	return nil
}

var errNoSendfile = errors.New("sendfile unavailable")

func sendFileTCP(tc *net.TCPConn, f *os.File, pos int64, size int) error {
	fraw, err := f.SyscallConn()
	if err != nil {
		return errNoSendfile
	}
	craw, err := tc.SyscallConn()
	if err != nil {
		return errNoSendfile
	}
	var opErr error
	ctlErr := fraw.Control(func(ffd uintptr) {
		remain := size
		off := pos
		werr := craw.Write(func(cfd uintptr) bool {
			for remain > 0 {
				n, err := syscall.Sendfile(int(cfd), int(ffd), &off, remain)
				if n > 0 {
					remain -= n
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until the socket is writable
				case err == syscall.EINTR:
					continue
				case err != nil:
					opErr = err
					return true
				case n == 0:
					opErr = errors.New("sendfile: file shorter than expected")
					return true
				}
			}
			return true
		})
		if opErr == nil {
			opErr = werr
		}
	})
	if ctlErr != nil {
		return ctlErr
	}
	return opErr
}

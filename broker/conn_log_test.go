package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/kbroker/kbroker/protocol"
)

// A client that goes away — closing or resetting its connection, between
// requests or mid-request — is logged at Debug; only a malformed frame is
// a warning, in one line.
func TestReadFailureLogLevels(t *testing.T) {
	const maxFrame = 1 << 20
	frame := func(size int32, body []byte) io.Reader {
		var b bytes.Buffer
		binary.Write(&b, binary.BigEndian, size)
		b.Write(body)
		return &b
	}
	cases := []struct {
		name string
		in   func(t *testing.T) io.Reader
		want string // the logged line's level and message
	}{
		{"close between requests", func(*testing.T) io.Reader { return strings.NewReader("") }, `level=DEBUG msg="connection closed by client"`},
		{"reset between requests", resetConn, `level=DEBUG msg="connection closed by client"`},
		{"close mid-request", func(*testing.T) io.Reader { return frame(100, []byte("abc")) }, `level=DEBUG msg="connection closed by client"`},
		{"frame too large", func(*testing.T) io.Reader { return frame(maxFrame+1, nil) }, `level=WARN msg="closing connection: malformed frame"`},
		{"closed by the broker", closedConn, ""},
		{"negative size", func(*testing.T) io.Reader { return frame(-5, nil) }, `level=WARN msg="closing connection: malformed frame"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := protocol.ReadFrameWith(bufio.NewReader(tc.in(t)), maxFrame, nil, nil)
			if err == nil {
				t.Fatal("read succeeded")
			}
			t.Logf("read error: %v", err)
			var out bytes.Buffer
			c := &conn{
				b:      &Broker{badInputLimiter: rate.NewLimiter(rate.Every(time.Second), 10)},
				logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			c.logReadFailure(err, maxFrame)
			if tc.want == "" {
				if out.Len() != 0 {
					t.Fatalf("logged %q for %v, want nothing", out.String(), err)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("logged %q for %v, want one line with %s", out.String(), err, tc.want)
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); sv.Close() })
	return sv.(*net.TCPConn), cl.(*net.TCPConn)
}

// resetConn is the server end of a connection the client reset (closed
// with SO_LINGER 0, as a killed client's kernel does): reads fail with
// ECONNRESET.
func resetConn(t *testing.T) io.Reader {
	sv, cl := tcpPair(t)
	if err := cl.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	sv.SetReadDeadline(time.Now().Add(5 * time.Second))
	return sv
}

// closedConn is a connection the broker itself closed (shutdown).
func closedConn(t *testing.T) io.Reader {
	sv, _ := tcpPair(t)
	sv.Close()
	return sv
}

package broker

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// maxInFlight bounds the responses a connection may owe at once; the reader
// stops taking requests until the writer catches up.
const maxInFlight = 32

// maxRetainedReadBuffer is the largest read buffer a connection keeps
// between requests.
const maxRetainedReadBuffer = 1 << 20

// requestInfo is the header of the request being served.
type requestInfo struct {
	key, version  int16
	correlationID int32
	clientID      string
}

// reply is a handler's answer. Exactly one of resp, later, wire is set, or
// none for requests that get no response (Produce with acks=0).
type reply struct {
	resp  kmsg.Response
	later func() kmsg.Response // resolved by the writer, in request order
	wire  func() *wireResponse // a pre-encoded response, e.g. zero-copy Fetch
	none  bool
}

func now(r kmsg.Response) reply              { return reply{resp: r} }
func later(f func() kmsg.Response) reply     { return reply{later: f} }
func noReply() reply                         { return reply{none: true} }
func wireReply(f func() *wireResponse) reply { return reply{wire: f} }

// pending is one response owed, in request order.
type pending struct {
	info  requestInfo
	reply reply
}

// conn serves one client connection. The reader goroutine decodes requests
// and runs handlers one after another, so side effects happen in request
// order (as Kafka, which mutes a connection while it serves a request);
// handlers that must wait (long-poll fetches, acks=all) return a deferred
// reply that the writer goroutine resolves, still in request order.
type conn struct {
	b        *Broker
	nc       net.Conn
	listener string // the listener the client connected through
	logger   *slog.Logger
	queue    chan pending
	done     chan struct{}
	once     sync.Once

	// ctx ends when the connection closes or the broker stops; requests
	// that block (JoinGroup, SyncGroup) derive from it.
	ctx    context.Context
	cancel context.CancelFunc
}

// requestContext is the context of one request on this connection.
func (c *conn) requestContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(c.ctx)
}

func (b *Broker) serveConn(nc net.Conn, listener string) {
	c := &conn{
		b:        b,
		nc:       nc,
		listener: listener,
		logger:   b.logger.With("remote", nc.RemoteAddr().String()),
		queue:    make(chan pending, maxInFlight),
		done:     make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(b.ctx)
	defer c.cancel()
	b.metrics.connections.Inc()
	defer b.metrics.connections.Dec()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	c.readLoop()
	close(c.queue)
	wg.Wait()
	nc.Close()
}

func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		close(c.done)
		c.nc.Close()
	})
}

// closing reports whether the connection or the broker is shutting down.
func (c *conn) closing() <-chan struct{} { return c.done }

func (c *conn) readLoop() {
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("request handler panicked; closing connection", "panic", r)
			c.close()
		}
	}()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	maxFrame := int32(c.b.cfg.SocketRequestMaxBytes)
	var buf []byte
	for {
		body, err := protocol.ReadFrameWith(r, maxFrame, buf, c.b.largeFrames.get)
		if err != nil {
			c.logReadFailure(err, maxFrame)
			c.close()
			return
		}
		// Keep the read buffer for the next request unless one huge request
		// grew it: idle connections must not pin large buffers.
		buf = body[:0]
		large := cap(buf) > maxRetainedReadBuffer
		if large {
			buf = nil
		}
		hdr, req, err := protocol.DecodeRequest(body, acceptsVersion)
		info := requestInfo{key: hdr.Key, version: hdr.Version, correlationID: hdr.CorrelationID, clientID: hdr.ClientID}
		if err != nil {
			if errors.Is(err, protocol.ErrUnsupported) && hdr.Key == int16(kmsg.ApiVersions) {
				// Answer with v0 and the supported ranges so the client can retry lower.
				c.enqueue(pending{info: requestInfo{key: int16(kmsg.ApiVersions), version: 0, correlationID: hdr.CorrelationID}, reply: now(apiVersionsResponse(0, kerr.UnsupportedVersion.Code))})
				continue
			}
			c.warnBadInput("closing connection: bad request", err, "api_key", hdr.Key, "api_version", hdr.Version, "client_id", hdr.ClientID)
			c.close()
			return
		}
		c.b.metrics.requests.WithLabelValues(kmsg.NameForKey(hdr.Key)).Inc()
		start := time.Now()
		rep, err := lookupAPI(hdr.Key).handle(c, info, req)
		c.b.metrics.requestSeconds.WithLabelValues(kmsg.NameForKey(hdr.Key)).Observe(time.Since(start).Seconds())
		if large && hdr.Key == int16(kmsg.Produce) {
			// Produce appends its records before the handler returns and
			// keeps no slice of the request, so the buffer can serve the
			// next large frame (big produce requests are the common case).
			c.b.largeFrames.put(body)
		}
		if err != nil {
			c.warnBadInput("closing connection: request refused", err, "api", kmsg.NameForKey(hdr.Key), "api_version", hdr.Version, "client_id", hdr.ClientID)
			c.close()
			return
		}
		if rep.none {
			continue
		}
		if !c.enqueue(pending{info: info, reply: rep}) {
			return
		}
	}
}

func (c *conn) enqueue(p pending) bool {
	select {
	case c.queue <- p:
		return true
	case <-c.done:
		return false
	}
}

// logReadFailure logs why reading the next frame failed, at the level an
// operator reads it (Kafka's Selector logs a disconnect at Debug and an
// invalid receive at Warn): a frame whose size prefix is negative or above
// socket.request.max.bytes is malformed input, one Warn line; anything else
// is the connection ending — the client closed it or reset it, between
// requests or in the middle of one — which is normal, at Debug. A read on a
// connection this broker closed (shutdown) is not logged.
func (c *conn) logReadFailure(err error, maxFrame int32) {
	switch {
	case errors.Is(err, protocol.ErrFrameTooLarge), errors.Is(err, protocol.ErrNegativeSize):
		c.warnBadInput("closing connection: malformed frame", err, "socket_request_max_bytes", maxFrame)
	case errors.Is(err, net.ErrClosed):
	default:
		c.logger.Debug("connection closed by client", "err", err)
	}
}

// warnBadInput logs one rate-limited warning about a misbehaving client.
func (c *conn) warnBadInput(msg string, err error, args ...any) {
	if c.b.badInputLimiter.Allow() {
		c.logger.Warn(msg, append([]any{"err", err}, args...)...)
	}
}

func (c *conn) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("response writer panicked; closing connection", "panic", r)
			c.close()
			for range c.queue {
			}
		}
	}()
	w := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for p := range c.queue {
		var err error
		switch {
		case p.reply.wire != nil:
			wr := p.reply.wire()
			err = wr.writeTo(c.nc, w, p.info.correlationID)
		default:
			resp := p.reply.resp
			if p.reply.later != nil {
				resp = p.reply.later()
			}
			buf = encodeResponse(buf[:0], p.info, resp)
			_, err = w.Write(buf)
		}
		if err == nil && len(c.queue) == 0 {
			err = w.Flush()
		}
		if err != nil {
			c.close()
			// Drain so the reader is not stuck and deferred work is released.
			for p := range c.queue {
				if p.reply.later != nil {
					p.reply.later()
				}
				if p.reply.wire != nil {
					p.reply.wire().release()
				}
			}
			return
		}
	}
	w.Flush()
}

// encodeResponse appends one whole response frame. ApiVersions always uses
// response header v0; every other flexible response uses header v1.
func encodeResponse(dst []byte, info requestInfo, resp kmsg.Response) []byte {
	resp.SetVersion(info.version)
	flexibleHeader := resp.IsFlexible() && info.key != int16(kmsg.ApiVersions)
	start := len(dst)
	dst = protocol.AppendResponseHeader(dst, info.correlationID, flexibleHeader)
	dst = resp.AppendTo(dst)
	protocol.FinishFrame(dst[start:], 0)
	return dst
}

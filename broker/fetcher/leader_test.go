package fetcher

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file is a small Kafka leader for the tests: it speaks the wire
// protocol over TCP (ApiVersions, Fetch, ListOffsets; any other key gets an
// empty answer) and serves follower fetches from in-memory logs with the
// leader's rules — diverging epochs, out-of-range offsets, scripted
// per-partition errors, a long poll while nothing is new.

// epochEntry is a leader epoch and the offset it starts at.
type epochEntry struct {
	epoch int32
	start int64
}

// endOffsetFor is Kafka's LeaderEpochFileCache.endOffsetFor over entries:
// the largest epoch <= epoch and where it ends; (-1, -1) when unknown.
func endOffsetFor(entries []epochEntry, epoch int32, leo int64) (int32, int64) {
	if epoch < 0 || len(entries) == 0 {
		return -1, -1
	}
	if entries[len(entries)-1].epoch == epoch {
		return epoch, leo
	}
	i := 0
	for i < len(entries) && entries[i].epoch <= epoch {
		i++
	}
	switch {
	case i == len(entries):
		return -1, -1
	case i == 0:
		return epoch, entries[0].start
	}
	return entries[i-1].epoch, entries[i].start
}

// rec is one single-record batch of a fake log.
type rec struct {
	offset int64
	epoch  int32
}

// encodeBatch writes r as a record batch v2 header (61 bytes, no record
// bodies): enough framing for the fetcher and the fake replica.
func encodeBatch(b []byte, r rec) []byte {
	var h [61]byte
	binary.BigEndian.PutUint64(h[0:], uint64(r.offset))
	binary.BigEndian.PutUint32(h[8:], uint32(len(h)-12))
	binary.BigEndian.PutUint32(h[12:], uint32(r.epoch))
	h[16] = 2                                 // magic
	binary.BigEndian.PutUint32(h[23:], 0)     // last offset delta
	binary.BigEndian.PutUint32(h[57:], 1)     // record count
	binary.BigEndian.PutUint64(h[27:], 0)     // first timestamp
	binary.BigEndian.PutUint64(h[43:], 1<<63) // producer ID -1
	return append(b, h[:]...)
}

// decodeBatches parses what encodeBatch wrote; a partial batch is an error.
func decodeBatches(b []byte) ([]rec, error) {
	var out []rec
	for len(b) > 0 {
		if len(b) < 61 {
			return nil, fmt.Errorf("partial batch of %d bytes", len(b))
		}
		n := int(binary.BigEndian.Uint32(b[8:]))
		if len(b) < 12+n {
			return nil, fmt.Errorf("partial batch: %d of %d bytes", len(b), 12+n)
		}
		out = append(out, rec{offset: int64(binary.BigEndian.Uint64(b)), epoch: int32(binary.BigEndian.Uint32(b[12:]))})
		b = b[12+n:]
	}
	return out, nil
}

// leaderLog is one partition on the fake leader.
type leaderLog struct {
	recs     []rec
	logStart int64
	epochs   []epochEntry
	epoch    int32 // current leader epoch
	hw       int64 // -1: the log end offset
	perFetch int   // batches per response, 0: all
	partial  bool  // end each non-empty response with a cut batch
	errCode  int16 // answer every fetch with this error
}

func (l *leaderLog) leo() int64 {
	if len(l.recs) == 0 {
		return l.logStart
	}
	return l.recs[len(l.recs)-1].offset + 1
}

// fakeLeader is a broker serving one node ID on 127.0.0.1.
type fakeLeader struct {
	t        *testing.T
	ln       net.Listener
	fetchMax int16

	mu       sync.Mutex
	logs     map[topicPartition]*leaderLog
	ids      map[[16]byte]string
	fetches  map[topicPartition]int // partitions fetched, by count
	requests []*kmsg.FetchRequest
	changed  chan struct{} // closed when a log changes
	conns    map[net.Conn]struct{}
	done     chan struct{} // closed by stop: long polls end
	hold     *heldFetch    // the next answer waits for a release
}

// heldFetch parks one answer, already built, until released.
type heldFetch struct {
	held    chan struct{} // closed when the answer is parked
	release chan struct{}
}

// holdNext parks the next answer with data or an error until release is
// called.
func (l *fakeLeader) holdNext() (held <-chan struct{}, release func()) {
	h := &heldFetch{held: make(chan struct{}), release: make(chan struct{})}
	l.mu.Lock()
	l.hold = h
	l.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(h.release) }) }
	l.t.Cleanup(release)
	return h.held, release
}

// newFakeLeader starts a leader advertising Fetch up to fetchMax.
func newFakeLeader(t *testing.T, fetchMax int16) *fakeLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	l := &fakeLeader{
		t: t, ln: ln, fetchMax: fetchMax,
		logs: map[topicPartition]*leaderLog{}, ids: map[[16]byte]string{},
		fetches: map[topicPartition]int{}, changed: make(chan struct{}), conns: map[net.Conn]struct{}{},
		done: make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.conns[c] = struct{}{}
			l.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.stop()
		wg.Wait()
	})
	return l
}

func (l *fakeLeader) addr() string { return l.ln.Addr().String() }

// stop closes the listener and every connection.
func (l *fakeLeader) stop() {
	l.ln.Close()
	close(l.done)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// setLog installs (or replaces) a partition's log.
func (l *fakeLeader) setLog(topic string, id [16]byte, partition int32, ll *leaderLog) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logs[topicPartition{topic, partition}] = ll
	l.ids[id] = topic
	l.changedLocked()
}

// update changes a partition's log under the leader's lock.
func (l *fakeLeader) update(topic string, partition int32, fn func(*leaderLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.logs[topicPartition{topic, partition}])
	l.changedLocked()
}

func (l *fakeLeader) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// fetchCount is how many fetches named the partition.
func (l *fakeLeader) fetchCount(topic string, partition int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetches[topicPartition{topic, partition}]
}

// lastRequest is the latest Fetch received.
func (l *fakeLeader) lastRequest() *kmsg.FetchRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.requests) == 0 {
		return nil
	}
	return l.requests[len(l.requests)-1]
}

// serve answers one connection's requests in order.
func (l *fakeLeader) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		out, err := l.handle(frame)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.t.Errorf("fake leader: %v", err)
			}
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// handle decodes one request frame and returns the response frame.
func (l *fakeLeader) handle(frame []byte) ([]byte, error) {
	if len(frame) < 10 {
		return nil, fmt.Errorf("short request header")
	}
	key := int16(binary.BigEndian.Uint16(frame))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := binary.BigEndian.Uint32(frame[4:])
	body := frame[8:]
	if n := int16(binary.BigEndian.Uint16(body)); n > 0 {
		body = body[2+int(n):]
	} else {
		body = body[2:]
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, fmt.Errorf("unknown key %d", key)
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode key %d v%d: %w", key, version, err)
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp = l.apiVersions(r)
	case *kmsg.FetchRequest:
		resp = l.fetch(r)
	case *kmsg.ListOffsetsRequest:
		resp = l.listOffsets(r)
	default:
		resp = req.ResponseKind()
		resp.SetVersion(version)
	}
	out := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(out[4:], corr)
	if resp.IsFlexible() && key != kmsg.ApiVersions.Int16() {
		out = append(out, 0) // response header v1: no tagged fields
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, nil
}

// skipTags skips a request header's tagged fields.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("bad tag count")
	}
	b = b[k:]
	for range n {
		_, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, fmt.Errorf("bad tag size")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

func (l *fakeLeader) apiVersions(r *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
	for _, k := range []struct {
		key      kmsg.Key
		min, max int16
	}{
		{kmsg.ApiVersions, 0, kmsg.NewPtrApiVersionsRequest().MaxVersion()},
		{kmsg.Fetch, 4, l.fetchMax},
		{kmsg.ListOffsets, 1, kmsg.NewPtrListOffsetsRequest().MaxVersion()},
		{kmsg.Metadata, 0, kmsg.NewPtrMetadataRequest().MaxVersion()},
	} {
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = k.key.Int16(), k.min, k.max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}

// fetch answers a follower fetch; with nothing to return it long-polls for
// up to MaxWaitMillis, as a leader does.
func (l *fakeLeader) fetch(r *kmsg.FetchRequest) kmsg.Response {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, r)
	for _, rt := range r.Topics {
		name := rt.Topic
		if r.Version >= 13 {
			name = l.ids[rt.TopicID]
		}
		for _, rp := range rt.Partitions {
			l.fetches[topicPartition{name, rp.Partition}]++
		}
	}
	deadline := time.Now().Add(time.Duration(r.MaxWaitMillis) * time.Millisecond)
	for {
		resp, ready := l.fetchLocked(r)
		wait := time.Until(deadline)
		if ready && l.hold != nil {
			h := l.hold
			l.hold = nil
			l.mu.Unlock()
			close(h.held)
			select {
			case <-h.release:
			case <-l.done:
			}
			l.mu.Lock()
			return resp
		}
		if ready || wait <= 0 {
			return resp
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(wait):
		case <-l.done:
			l.mu.Lock()
			return resp
		}
		l.mu.Lock()
	}
}

// fetchLocked builds the answer; ready means it has data, an error or a
// divergence, so the long poll ends.
func (l *fakeLeader) fetchLocked(r *kmsg.FetchRequest) (*kmsg.FetchResponse, bool) {
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	ready := false
	for _, rt := range r.Topics {
		name := rt.Topic
		if r.Version >= 13 {
			name = l.ids[rt.TopicID]
		}
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			if l.answerLocked(name, rp, &sp) {
				ready = true
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, ready
}

func (l *fakeLeader) answerLocked(name string, rp kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition) bool {
	ll := l.logs[topicPartition{name, rp.Partition}]
	switch {
	case ll == nil:
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return true
	case ll.errCode != 0:
		sp.ErrorCode = ll.errCode
		return true
	case rp.CurrentLeaderEpoch < ll.epoch:
		sp.ErrorCode = kerr.FencedLeaderEpoch.Code
		return true
	case rp.CurrentLeaderEpoch > ll.epoch:
		sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
		return true
	}
	leo := ll.leo()
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = leo, leo, ll.logStart
	if ll.hw >= 0 {
		sp.HighWatermark, sp.LastStableOffset = ll.hw, ll.hw
	}
	if rp.LastFetchedEpoch >= 0 && rp.FetchOffset > 0 {
		e, end := endOffsetFor(ll.epochs, rp.LastFetchedEpoch, leo)
		if e < rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = e, end
			return true
		}
	}
	if rp.FetchOffset > leo || rp.FetchOffset < ll.logStart {
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return true
	}
	n := 0
	for _, r := range ll.recs {
		if r.offset < rp.FetchOffset {
			continue
		}
		if ll.perFetch > 0 && n == ll.perFetch {
			break
		}
		sp.RecordBatches = encodeBatch(sp.RecordBatches, r)
		n++
	}
	if n > 0 && ll.partial {
		sp.RecordBatches = encodeBatch(sp.RecordBatches, rec{offset: 1 << 40})[:len(sp.RecordBatches)+30]
	}
	return n > 0
}

func (l *fakeLeader) listOffsets(r *kmsg.ListOffsetsRequest) kmsg.Response {
	l.mu.Lock()
	defer l.mu.Unlock()
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			ll := l.logs[topicPartition{rt.Topic, rp.Partition}]
			switch {
			case ll == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch != ll.epoch:
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case rp.Timestamp == -1:
				sp.Offset, sp.LeaderEpoch = ll.leo(), ll.epoch
			case rp.Timestamp == -2:
				sp.Offset, sp.LeaderEpoch = ll.logStart, ll.epoch
			default:
				sp.ErrorCode = kerr.InvalidRequest.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

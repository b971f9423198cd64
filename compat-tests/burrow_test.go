package compat

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBurrow points Debian's burrow (LinkedIn Burrow 1.2.1, built with
// Sarama 1.22) at kbroker. Burrow is not a group member: its consumer module
// fetches __consumer_offsets itself and decodes Kafka's OffsetCommit
// records, so the offsets it reports prove the on-disk record format with a
// decoder that is not ours.
//
// Burrow 1.2.1 cannot compute lag against Kafka 4 or kbroker: its cluster
// module hard-codes ListOffsets v0 (no Version set on sarama.OffsetRequest),
// which Kafka 4.0 removed (KIP-896), so the broker closes the connection and
// Burrow's storage drops every consumer offset for lack of end offsets. The
// test therefore reads what the consumer module decoded from Burrow's debug
// log, and checks the HTTP API only for the cluster. See FINDINGS.md.
//
// Burrow 1.2.1 also refuses to start without ZooKeeper, which it only uses
// for its own locks; zkStub answers the few calls it makes.
func TestBurrow(t *testing.T) {
	bin := requireTool(t, "Burrow", "install the Debian package burrow")
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group, parts = "burrow-topic", "burrow-group", 3
	createTopic(t, adm, topic, parts, nil)
	end := produceSeq(t, b, topic, parts, 90)

	// A real member consumes everything but commits less: the offsets
	// differ per partition and from the end offsets.
	member := newClient(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	ctx := testCtx(t, 90*time.Second)
	for n := 0; n < 90; {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("group member consumed %d of 90 records: %v", n, err)
		}
		n += fs.NumRecords()
	}
	commit := func(offsets map[int32]int64) (from, to int64) {
		t.Helper()
		offs := map[string]map[int32]kgo.EpochOffset{topic: {}}
		for p, o := range offsets {
			offs[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
		from = time.Now().UnixMilli()
		var cerr error
		member.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = err
			if err == nil {
				for _, tp := range resp.Topics {
					for _, p := range tp.Partitions {
						if p.ErrorCode != 0 {
							cerr = fmt.Errorf("commit %s/%d: %s", tp.Topic, p.Partition, errCode(p.ErrorCode))
						}
					}
				}
			}
		})
		if cerr != nil {
			t.Fatal(cerr)
		}
		if got := fetchCommitted(t, adm, group, topic, parts); !mapsEqual(got, offsets) {
			t.Fatalf("committed %v, want %v", got, offsets)
		}
		return from, time.Now().UnixMilli()
	}
	first := map[int32]int64{0: 10, 1: 25, 2: 30}
	from, to := commit(first)

	zk := startZKStub(t)
	br := startBurrow(t, bin, b.Addr(), zk)
	waitFor(t, 30*time.Second, "burrow decodes the commits already in __consumer_offsets", func() error {
		return br.decoded(group, topic, first, from, to)
	})
	// Burrow keeps tailing the topic: a later commit shows up too.
	second := map[int32]int64{0: end[0], 1: 26, 2: 0}
	from, to = commit(second)
	waitFor(t, 30*time.Second, "burrow decodes a live commit", func() error {
		return br.decoded(group, topic, second, from, to)
	})
	if bad := br.matching(`"msg":"failed to decode","type":"module","coordinator":"consumer"`, `"message_type":"offset"`); len(bad) > 0 {
		t.Errorf("burrow could not decode offset commit records:\n%s", strings.Join(bad, "\n"))
	}
	if n := br.matching(`"msg":"starting consumers"`, `"topic":"__consumer_offsets","count":5`); len(n) != 1 {
		t.Errorf("burrow did not start one consumer per __consumer_offsets partition (5): %q", n)
	}
	// Burrow 1.2.1 decodes group metadata values v0/v1 only; Kafka writes
	// v3 since 2.3, so a warning here is what Kafka gets too.
	for _, l := range br.matching(`"message_type":"metadata"`, `"reason":"value version"`) {
		t.Logf("as against Kafka 2.3+: %s", l)
	}
	var clusters struct {
		Error    bool     `json:"error"`
		Clusters []string `json:"clusters"`
	}
	if err := br.api.get("/v3/kafka", &clusters); err != nil || clusters.Error || !slices.Equal(clusters.Clusters, []string{"kb"}) {
		t.Errorf("burrow /v3/kafka: %+v (%v), want cluster kb", clusters, err)
	}
	if l := br.matching(`"failed to fetch offsets from broker"`); len(l) > 0 {
		t.Logf("lag is not available from burrow 1.2.1 (ListOffsets v0, removed in Kafka 4.0): %s", l[0])
	}
}

// burrowAPI is Burrow's HTTP server.
type burrowAPI struct{ base string }

func (a burrowAPI) get(path string, into any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %v in %s", path, err, body)
	}
	return nil
}

// burrowProc is a running Burrow; its stdout (JSON log lines) is kept.
type burrowProc struct {
	api burrowAPI

	mu    sync.Mutex
	lines []string
}

// burrowOffsetLine is Burrow's debug line for one decoded OffsetCommit
// record.
type burrowOffsetLine struct {
	Msg         string `json:"msg"`
	MessageType string `json:"message_type"`
	Group       string `json:"group"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	Timestamp   int64  `json:"timestamp"`
}

// decoded checks that the latest offset Burrow decoded for each partition
// is want[p], with a commit timestamp within [from, to] (milliseconds).
func (bp *burrowProc) decoded(group, topic string, want map[int32]int64, from, to int64) error {
	latest := map[int32]burrowOffsetLine{}
	bp.mu.Lock()
	for _, l := range bp.lines {
		if !strings.Contains(l, `"msg":"consumer offset"`) {
			continue
		}
		var ol burrowOffsetLine
		if err := json.Unmarshal([]byte(l), &ol); err != nil {
			bp.mu.Unlock()
			return fmt.Errorf("burrow log line %q: %v", l, err)
		}
		if ol.MessageType == "offset" && ol.Group == group && ol.Topic == topic {
			latest[ol.Partition] = ol
		}
	}
	bp.mu.Unlock()
	for p, w := range want {
		got, ok := latest[p]
		switch {
		case !ok:
			return fmt.Errorf("no offset decoded for %s/%d yet", topic, p)
		case got.Offset != w:
			return fmt.Errorf("%s/%d: burrow decoded offset %d, want %d", topic, p, got.Offset, w)
		case got.Timestamp < from || got.Timestamp > to:
			return fmt.Errorf("%s/%d: burrow decoded commit timestamp %d, outside the commit's [%d, %d]", topic, p, got.Timestamp, from, to)
		}
	}
	return nil
}

// matching returns the log lines that contain every one of subs.
func (bp *burrowProc) matching(subs ...string) []string {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	var out []string
	for _, l := range bp.lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// burrowListener matches Burrow's log line for its HTTP listener.
var burrowListener = regexp.MustCompile(`"started listener".*"listener":"([0-9.]+:[0-9]+)"`)

// startBurrow writes a burrow.toml for one cluster named kb (the broker at
// addr), a kafka-class consumer module reading __consumer_offsets from the
// start, and an HTTP server on 127.0.0.1:0, and starts Burrow with debug
// logging on stdout.
func startBurrow(t *testing.T, bin, addr, zk string) *burrowProc {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`[general]
pidfile=%[1]q

[logging]
level="debug"

[zookeeper]
servers=[%[2]q]
timeout=6
root-path="/burrow"

# 2.1.0 is the newest version burrow 1.2.1 knows; it makes Sarama 1.22
# send Metadata v5 and Fetch v10, both served by Kafka 4.
[client-profile.kb]
client-id="burrow-compat"
kafka-version="2.1.0"

[cluster.kb]
class-name="kafka"
servers=[%[3]q]
client-profile="kb"
topic-refresh=2
offset-refresh=1

[consumer.kb]
class-name="kafka"
cluster="kb"
servers=[%[3]q]
client-profile="kb"
offsets-topic="__consumer_offsets"
start-latest=false

[httpserver.default]
address="127.0.0.1:0"

[storage.default]
class-name="inmemory"
workers=2
intervals=10
expire-group=604800
min-distance=1
`, filepath.Join(dir, "burrow.pid"), zk, addr)
	if err := os.WriteFile(filepath.Join(dir, "burrow.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config-dir", dir)
	setDeathSignal(cmd)
	bp := &burrowProc{}
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start burrow: %v", err)
	}
	found := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		reported := false
		for sc.Scan() {
			line := sc.Text()
			bp.mu.Lock()
			bp.lines = append(bp.lines, line)
			bp.mu.Unlock()
			if m := burrowListener.FindStringSubmatch(line); m != nil && !reported {
				reported = true
				found <- m[1]
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	dump := func() string {
		bp.mu.Lock()
		defer bp.mu.Unlock()
		var keep []string
		for _, l := range bp.lines {
			// The notifier retries its ZooKeeper lock every 100ms.
			if !strings.Contains(l, "zk lock") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n") + "\n" + stderr.String()
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("burrow output:\n%s", dump())
		}
	})
	select {
	case a := <-found:
		bp.api = burrowAPI{base: "http://" + a}
		return bp
	case <-exited:
		t.Fatalf("burrow exited before serving HTTP:\n%s", dump())
	case <-time.After(30 * time.Second):
		t.Fatalf("burrow did not log its HTTP listener within 30s:\n%s", dump())
	}
	return nil
}

// zkStub is the smallest ZooKeeper server Burrow 1.2.1 accepts: it
// establishes sessions, answers pings, and lets Create succeed (Burrow
// creates its root path at startup). Every other operation gets
// ZUNIMPLEMENTED, which only Burrow's notifier lock uses; it retries and
// logs. ZooKeeper plays no part in what the test checks.
func startZKStub(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for session := int64(1); ; session++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveZK(c, 0x6b62726f6b657200+session)
			}()
		}
	}()
	return ln.Addr().String()
}

// ZooKeeper wire constants (jute encoding, all big-endian).
const (
	zkOpCreate        = 1
	zkOpPing          = 11
	zkOpClose         = -11
	zkUnimplemented   = -6
	zkPingXid         = -2
	zkProtocolVersion = 0
)

func readZKFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 1<<20 {
		return nil, fmt.Errorf("zk frame of %d bytes", size)
	}
	buf := make([]byte, size)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func writeZKFrame(w io.Writer, body []byte) error {
	_, err := w.Write(binary.BigEndian.AppendUint32(body[:0:0], uint32(len(body))))
	if err == nil {
		_, err = w.Write(body)
	}
	return err
}

func serveZK(c net.Conn, session int64) {
	// ConnectRequest: protocolVersion int32, lastZxidSeen int64,
	// timeOut int32, sessionId int64, passwd buffer.
	req, err := readZKFrame(c)
	if err != nil || len(req) < 16 {
		return
	}
	timeout := binary.BigEndian.Uint32(req[12:16])
	// ConnectResponse: protocolVersion, timeOut, sessionId, passwd.
	resp := binary.BigEndian.AppendUint32(nil, zkProtocolVersion)
	resp = binary.BigEndian.AppendUint32(resp, timeout)
	resp = binary.BigEndian.AppendUint64(resp, uint64(session))
	resp = binary.BigEndian.AppendUint32(resp, 16)
	resp = append(resp, make([]byte, 16)...)
	if writeZKFrame(c, resp) != nil {
		return
	}
	var zxid int64
	for {
		req, err := readZKFrame(c)
		if err != nil || len(req) < 8 {
			return
		}
		xid := int32(binary.BigEndian.Uint32(req))
		op := int32(binary.BigEndian.Uint32(req[4:]))
		zxid++
		// ReplyHeader: xid int32, zxid int64, err int32.
		hdr := binary.BigEndian.AppendUint32(nil, uint32(xid))
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(zxid))
		switch op {
		case zkOpPing:
			hdr = binary.BigEndian.AppendUint32(hdr, 0)
		case zkOpCreate:
			// CreateRequest starts with the path; the reply is the path.
			if len(req) < 12 {
				return
			}
			n := binary.BigEndian.Uint32(req[8:])
			if uint64(len(req)) < 12+uint64(n) {
				return
			}
			hdr = binary.BigEndian.AppendUint32(hdr, 0)
			hdr = binary.BigEndian.AppendUint32(hdr, n)
			hdr = append(hdr, req[12:12+n]...)
		case zkOpClose:
			hdr = binary.BigEndian.AppendUint32(hdr, 0)
			_ = writeZKFrame(c, hdr)
			return
		default:
			code := int32(zkUnimplemented)
			hdr = binary.BigEndian.AppendUint32(hdr, uint32(code))
		}
		if writeZKFrame(c, hdr) != nil {
			return
		}
	}
}

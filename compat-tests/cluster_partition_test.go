package compat

// Network partitions for the multi-process cluster of
// cluster_harness_test.go. Each broker runs in its own network namespace;
// a partition is a set of iptables DROP rules inside one broker's namespace
// that cut it off from the other brokers (and so from the etcd quorum,
// whose members they embed) while the test's clients on the host still
// reach it.
//
// The private network, all of it made and removed by the test:
//
//	host ── veth ──┐
//	               │  bridge in namespace kbp-<id>-hub
//	kbp-<id>-1 ────┤  (10.213.<n>.1)
//	kbp-<id>-2 ────┤  (10.213.<n>.2)
//	kbp-<id>-3 ────┘  (10.213.<n>.3); the host side is 10.213.<n>.254
//
// The bridge lives in a namespace of its own rather than on the host: a
// host bridge's traffic passes the host's FORWARD chain (br_netfilter),
// whose policy is often DROP (Docker sets it), and the test must not touch
// the host's firewall.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Fixed ports are safe: every broker has an address of its own.
const (
	netnsKafkaPort    = 9092
	netnsEtcdClient   = 2379
	netnsEtcdPeerPort = 2380
)

// netnsLab is the private network of one test run. Owned by the test
// goroutine.
type netnsLab struct {
	t        *testing.T
	ipBin    string
	iptables string
	prefix   string // kbp-<id>: namespaces are <prefix>-hub, <prefix>-1…
	subnet   string // the first three octets, e.g. "10.213.57"
	hostLink string // the host end of the veth into the bridge
	n        int
	// cut holds the brokers whose namespace has DROP rules in place.
	cut map[int]bool
}

// newNetnsLab builds the network for n brokers and removes it when the
// test ends. Without root, ip(8) or iptables the test is skipped, or fails
// under CI.
func newNetnsLab(t *testing.T, n int) *netnsLab {
	t.Helper()
	if os.Geteuid() != 0 {
		missingTool(t, "network partition tests need root (ip netns, iptables)")
	}
	l := &netnsLab{
		t:        t,
		ipBin:    requireTool(t, "ip", "network partitions use network namespaces (iproute2)"),
		iptables: requireTool(t, "iptables", "network partitions drop packets with iptables"),
		n:        n,
		cut:      make(map[int]bool),
	}
	id := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	l.prefix = "kbp-" + id
	l.hostLink = "kbp" + id + "h" // at most 15 bytes, as Linux requires
	subnet, err := l.pickSubnet()
	if err != nil {
		t.Fatal(err)
	}
	l.subnet = subnet
	t.Cleanup(l.remove)
	if err := l.build(); err != nil {
		// An unprivileged container may let us be root without
		// CAP_SYS_ADMIN/CAP_NET_ADMIN: that is an environment without
		// namespaces, not a broker bug.
		missingTool(t, fmt.Sprintf("cannot build a network namespace lab: %v", err))
	}
	return l
}

// pickSubnet chooses a 10.213.x.0/24 that no host address or route uses.
func (l *netnsLab) pickSubnet() (string, error) {
	out, err := exec.Command(l.ipBin, "-4", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip route: %v: %s", err, out)
	}
	for range 50 {
		s := fmt.Sprintf("10.213.%d", 1+rand.IntN(253))
		if !strings.Contains(string(out), s+".") {
			return s, nil
		}
	}
	return "", fmt.Errorf("no free 10.213.x.0/24 subnet")
}

func (l *netnsLab) ns(i int) string { return fmt.Sprintf("%s-%d", l.prefix, i) }
func (l *netnsLab) hub() string     { return l.prefix + "-hub" }

// addr is broker i's address (1-based).
func (l *netnsLab) addr(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i) }

// run runs ip(8) or another command and returns its output in the error.
func (l *netnsLab) run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *netnsLab) build() error {
	ip := l.ipBin
	steps := [][]string{
		{"netns", "add", l.hub()},
		{"-n", l.hub(), "link", "add", "br0", "type", "bridge"},
		{"-n", l.hub(), "link", "set", "br0", "up"},
	}
	for i := 1; i <= l.n; i++ {
		port := fmt.Sprintf("p%d", i)
		steps = append(steps,
			[]string{"netns", "add", l.ns(i)},
			[]string{"-n", l.hub(), "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", l.ns(i)},
			[]string{"-n", l.hub(), "link", "set", port, "master", "br0", "up"},
			[]string{"-n", l.ns(i), "addr", "add", l.addr(i) + "/24", "dev", "eth0"},
			[]string{"-n", l.ns(i), "link", "set", "eth0", "up"},
			[]string{"-n", l.ns(i), "link", "set", "lo", "up"},
		)
	}
	steps = append(steps,
		[]string{"-n", l.hub(), "link", "add", "ph", "type", "veth", "peer", "name", l.hostLink, "netns", "1"},
		[]string{"-n", l.hub(), "link", "set", "ph", "master", "br0", "up"},
		[]string{"addr", "add", l.addr(254) + "/24", "dev", l.hostLink},
		[]string{"link", "set", l.hostLink, "up"},
	)
	for _, s := range steps {
		if err := l.run(ip, s...); err != nil {
			return err
		}
	}
	// iptables must work inside a namespace for Partition to mean anything.
	return l.run(ip, "netns", "exec", l.ns(1), l.iptables, "-w", "-S")
}

// remove deletes every namespace (and with them the bridge and the veths).
// It runs after the cluster's processes are gone (cleanups run last-in
// first-out), since a namespace stays alive while a process is in it.
func (l *netnsLab) remove() {
	for _, ns := range append([]string{l.hub()}, l.nsNames()...) {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := l.run(l.ipBin, "netns", "del", ns); err != nil {
			l.t.Errorf("cleanup: %v", err)
		}
	}
	// Gone with its peer in the hub; deleted here in case the hub was not.
	_ = exec.Command(l.ipBin, "link", "del", l.hostLink).Run()
}

func (l *netnsLab) nsNames() []string {
	var out []string
	for i := 1; i <= l.n; i++ {
		out = append(out, l.ns(i))
	}
	return out
}

// Partition cuts broker i off from every other broker, in both directions;
// the host still reaches it.
func (l *netnsLab) Partition(i int) {
	l.t.Helper()
	for j := 1; j <= l.n; j++ {
		if j == i {
			continue
		}
		for _, rule := range [][]string{
			{"-A", "INPUT", "-s", l.addr(j), "-j", "DROP"},
			{"-A", "OUTPUT", "-d", l.addr(j), "-j", "DROP"},
		} {
			args := append([]string{"netns", "exec", l.ns(i), l.iptables, "-w"}, rule...)
			if err := l.run(l.ipBin, args...); err != nil {
				l.t.Fatalf("partition broker %d: %v", i, err)
			}
		}
	}
	l.cut[i] = true
}

// Heal removes broker i's DROP rules.
func (l *netnsLab) Heal(i int) error {
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		if err := l.run(l.ipBin, "netns", "exec", l.ns(i), l.iptables, "-w", "-F", chain); err != nil {
			return fmt.Errorf("heal broker %d: %w", i, err)
		}
	}
	delete(l.cut, i)
	return nil
}

// healAll is a cleanup: a cluster shuts down quickly only with its etcd
// quorum whole.
func (l *netnsLab) healAll() {
	for i := range l.cut {
		if err := l.Heal(i); err != nil {
			l.t.Errorf("cleanup: %v", err)
		}
	}
}

// startNetnsCluster is StartCluster with broker i in namespace i of lab,
// its Kafka listener and etcd member on the namespace's address.
func startNetnsCluster(t *testing.T, lab *netnsLab, overrides ...string) *Cluster {
	t.Helper()
	bin := brokerBin(t)
	c, root := newCluster(t)
	// Registered after newCluster's shutdown, so it runs before it.
	t.Cleanup(lab.healAll)
	var members []string
	for i := 1; i <= lab.n; i++ {
		members = append(members, fmt.Sprintf("%d=http://%s:%d", i, lab.addr(i), netnsEtcdPeerPort))
	}
	for i := 1; i <= lab.n; i++ {
		// Node launches its bin with the broker's arguments: a wrapper
		// enters the namespace and execs the broker, so the process the
		// harness signals is the broker itself.
		wrapper := filepath.Join(root, fmt.Sprintf("kbroker-ns%d.sh", i))
		script := fmt.Sprintf("#!/bin/sh\nexec %s netns exec %s %s \"$@\"\n", lab.ipBin, lab.ns(i), bin)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatalf("write %s: %v", wrapper, err)
		}
		// The harness's own 127.0.0.1 listener comes first on the command
		// line; this later one wins.
		c.addNode(root, wrapper, netnsKafkaPort, append([]string{
			fmt.Sprintf("listeners=PLAINTEXT://%s:%d", lab.addr(i), netnsKafkaPort),
			"etcd.embed.initial.cluster=" + strings.Join(members, ","),
			fmt.Sprintf("etcd.embed.client.url=http://%s:%d", lab.addr(i), netnsEtcdClient),
			fmt.Sprintf("etcd.embed.peer.url=http://%s:%d", lab.addr(i), netnsEtcdPeerPort),
		}, overrides...))
	}
	if err := c.startNodes(); err != nil {
		t.Fatalf("start cluster in namespaces: %v", err)
	}
	c.waitController(20 * time.Second)
	return c
}

// waitLeaderAmong waits until every node of nodes names the same leader
// for partition p of topic, one of nodes, at an epoch above minEpoch.
func waitLeaderAmong(t *testing.T, c *Cluster, nodes []*Node, topic string, p, minEpoch int32, d time.Duration) PartState {
	t.Helper()
	ids := make(map[int32]bool)
	for _, nd := range nodes {
		ids[nd.ID] = true
	}
	var out PartState
	waitFor(t, d, fmt.Sprintf("%s-%d: a leader among %v above epoch %d", topic, p, ids, minEpoch), func() error {
		var first *PartState
		for _, nd := range nodes {
			md, _, err := c.MetadataSeenBy(nd, topic)
			if err != nil {
				return err
			}
			st := md[p]
			if !ids[st.Leader] || st.Epoch <= minEpoch {
				return fmt.Errorf("node %d sees leader %d at epoch %d", nd.ID, st.Leader, st.Epoch)
			}
			if first != nil && (first.Leader != st.Leader || first.Epoch != st.Epoch) {
				return fmt.Errorf("nodes disagree: leader %d epoch %d vs leader %d epoch %d", first.Leader, first.Epoch, st.Leader, st.Epoch)
			}
			first = &st
		}
		out = *first
		return nil
	})
	return out
}

// cutOffWrite is one acks=all Produce sent to the isolated leader.
type cutOffWrite struct {
	value    string
	sent     time.Time
	answered time.Time
	code     int16
	err      error
}

// isolatedWriter keeps sending acks=all Produce requests, one record each,
// straight to one broker's connection (no metadata, so no rerouting),
// from a few goroutines so several are in flight at once.
type isolatedWriter struct {
	mu     sync.Mutex
	writes []cutOffWrite // guarded by mu; filled by the workers
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startIsolatedWriter(conn *kgo.Broker, topic string, id [16]byte, workers int) *isolatedWriter {
	w := &isolatedWriter{stop: make(chan struct{})}
	var next atomic.Int64
	for range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for {
				value := fmt.Sprintf("cut-off-%d", next.Add(1))
				sent := time.Now()
				req := rawProduceRequest(topic, id, value)
				// Kafka answers one request per connection at a time, so
				// the workers' requests wait in turn: keep their sum
				// under kgo's read timeout (timeout + 5s overhead).
				req.TimeoutMillis = 1500
				ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
				resp, err := conn.Request(ctx, req)
				cancel()
				out := cutOffWrite{value: value, sent: sent, answered: time.Now(), err: err}
				if err == nil {
					out.code = produceCode(resp)
				}
				w.mu.Lock()
				w.writes = append(w.writes, out)
				w.mu.Unlock()
				select {
				case <-w.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return w
}

// sentSince counts the writes sent after t0 that have an answer (errors
// included), and the time from the first such send to the last answer.
func (w *isolatedWriter) sentSince(t0 time.Time) (int, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	var first, last time.Time
	for _, o := range w.writes {
		if !o.sent.After(t0) {
			continue
		}
		n++
		if first.IsZero() || o.sent.Before(first) {
			first = o.sent
		}
		if o.answered.After(last) {
			last = o.answered
		}
	}
	return n, last.Sub(first)
}

// finish stops the workers and returns every outcome.
func (w *isolatedWriter) finish() []cutOffWrite {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// partitionLogBytes concatenates a node's segment files of one partition.
func partitionLogBytes(nd *Node, dir string) ([]byte, error) {
	names, err := filepath.Glob(filepath.Join(nd.LogDir, dir, "*.log"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var all []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		all = append(all, b...)
	}
	return all, nil
}

// TestClusterPartitionedLeader: the leader of an RF 3, min.insync.replicas
// 2 partition is cut off by the network from the other brokers — and so
// from the etcd quorum — while a client that only knows it keeps sending
// acks=all writes. Once the other side has a new leader, the isolated one
// never acknowledges an acks=all write (it cannot have replicated any).
// When the network heals it registers again, rejoins the ISR as a follower
// and truncates the tail only it had: the partition then holds every
// record acknowledged by anyone exactly once and nothing else, and every
// replica's log is byte for byte the same.
func TestClusterPartitionedLeader(t *testing.T) {
	const topic = "cut"
	lab := newNetnsLab(t, 3)
	c := startNetnsCluster(t, lab, clusterOverrides...)
	c.CreateTopic(topic, 1, nil)
	ctx := testCtx(t, 80*time.Second)

	// acked counts the values whose acks=all write someone acknowledged.
	acked := make(map[string]int)
	produceAll := func(cl *kgo.Client, tag string, n int) {
		t.Helper()
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", tag, i)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("%s: acks=all produce: %v", tag, err)
		}
		for _, r := range recs {
			acked[string(r.Value)]++
		}
	}
	producerOpts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner())}
	produceAll(c.Client(producerOpts...), "before", 100)

	st := c.WaitFullISR(topic, 10*time.Second)[0]
	x := c.Node(st.Leader)
	var others []*Node
	var otherAddrs []string
	for _, nd := range c.Nodes {
		if nd != x {
			others = append(others, nd)
			otherAddrs = append(otherAddrs, nd.Addr())
		}
	}
	_, topicID, err := c.MetadataSeenBy(x, topic)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.NodeClient(x).SeedBrokers()[0]
	warm, err := conn.Request(ctx, rawProduceRequest(topic, topicID, "warm"))
	if err != nil {
		t.Fatalf("produce to the leader %d: %v", x.ID, err)
	}
	if code := produceCode(warm); code != 0 {
		t.Fatalf("produce to the leader %d: %s", x.ID, errCode(code))
	}
	acked["warm"]++

	t.Logf("partitioning node %d, leader of %s-0 at epoch %d, from nodes %s and %s", x.ID, topic, st.Epoch, otherAddrs[0], otherAddrs[1])
	lab.Partition(int(x.ID))
	fmt.Fprintf(x.stderr, "=== node %d partitioned from the other brokers at %s\n", x.ID, time.Now().Format(time.RFC3339Nano))
	// An acks=1 write is acknowledged by the leader alone, as in Kafka; it
	// can never reach a follower now, so it gives the isolated leader a
	// divergent tail however quickly its lease fencing starts.
	// kgo rewrites a raw Produce's acks to its client's setting.
	oneAck := c.NodeClient(x, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	tailReq := rawProduceRequest(topic, topicID, "divergent-tail")
	tailReq.Acks = 1
	if resp, err := oneAck.SeedBrokers()[0].Request(ctx, tailReq); err != nil {
		t.Fatalf("acks=1 produce to the isolated leader: %v", err)
	} else if code := produceCode(resp); code != 0 {
		t.Fatalf("acks=1 produce to the isolated leader: %s", errCode(code))
	}
	w := startIsolatedWriter(conn, topic, topicID, 3)

	now := waitLeaderAmong(t, c, others, topic, 0, st.Epoch, 30*time.Second)
	newLeaderSeen := time.Now()
	t.Logf("node %d leads %s-0 at epoch %d (seen by nodes %d and %d)", now.Leader, topic, now.Epoch, others[0].ID, others[1].ID)
	produceAll(c.clientFor(otherAddrs, producerOpts...), "new-leader", 100)

	// The isolated leader must go on refusing for a while, not only once.
	waitFor(t, 30*time.Second, fmt.Sprintf("node %d answers acks=all writes for 2s after the new leader exists", x.ID), func() error {
		if n, span := w.sentSince(newLeaderSeen); n < 20 || span < 2*time.Second {
			return fmt.Errorf("%d writes sent since the new leader was seen are answered, over %v", n, span.Round(time.Millisecond))
		}
		return nil
	})
	writes := w.finish()
	codes := make(map[string]int)
	var slowest time.Duration
	for _, o := range writes {
		slowest = max(slowest, o.answered.Sub(o.sent))
		switch {
		case o.err != nil:
			codes["client error"]++
		case o.code == 0 && o.answered.After(newLeaderSeen):
			t.Errorf("node %d acknowledged acks=all write %q at %s, after node %d became leader", x.ID, o.value, o.answered.Format(time.RFC3339Nano), now.Leader)
			acked[o.value]++
		case o.code == 0:
			t.Errorf("node %d acknowledged acks=all write %q while no follower could reach it", x.ID, o.value)
			acked[o.value]++
		default:
			codes[errCode(o.code)]++
		}
	}
	t.Logf("node %d's answers to %d acks=all writes while partitioned (slowest %v): %v", x.ID, len(writes), slowest.Round(time.Millisecond), codes)

	// The isolated leader appended what nobody else has: its divergent tail.
	own, err := partitionLogBytes(x, topic+"-0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(own, []byte("divergent-tail")) {
		t.Fatalf("node %d's log holds no divergent tail before the heal (%s); the truncation check would prove nothing", x.ID, describeBatches(own))
	}
	t.Logf("node %d's log before the heal: %s", x.ID, describeBatches(own))

	if err := lab.Heal(int(x.ID)); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	fmt.Fprintf(x.stderr, "=== node %d healed at %s\n", x.ID, healed.Format(time.RFC3339Nano))
	// Every node, the healed one included, agrees on the leader and on an
	// ISR of three: the healed node registered again and caught up.
	c.WaitFullISR(topic, 40*time.Second)
	t.Logf("ISR full again %v after the heal", time.Since(healed).Round(time.Millisecond))
	produceAll(c.Client(producerOpts...), "after-heal", 50)
	waitFor(t, 30*time.Second, "every replica holds the same log", func() error {
		return sameReplicaLogs(c, topic+"-0")
	})

	// The partition holds exactly the acknowledged records, once each.
	end := endOffsetsOf(t, c, topic)[0]
	want := 0
	for _, n := range acked {
		want += n
	}
	if end != int64(want) {
		t.Errorf("end offset %d, but %d acks=all writes were acknowledged", end, want)
	}
	cons := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsetsAtStart(1)}))
	seen := make(map[string]int)
	for read := int64(0); read < end; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", read, end)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			seen[string(r.Value)]++
			if acked[string(r.Value)] == 0 {
				t.Errorf("offset %d holds %q, which no acks=all write acknowledged", r.Offset, r.Value)
			}
		})
	}
	for v, n := range acked {
		if seen[v] != n {
			t.Errorf("acknowledged record %q is in the log %d times", v, seen[v])
		}
	}
}

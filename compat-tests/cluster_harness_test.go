package compat

// A multi-process cluster harness: three kbroker processes, each embedding
// one member of a three-member etcd cluster (etcd.embed.initial.cluster), as
// a KRaft combined-mode quorum would be deployed. Nodes can be killed
// (SIGKILL), stopped (SIGTERM), restarted on the same log directory, etcd
// peer port and Kafka port, and paused/resumed (SIGSTOP/SIGCONT), so tests
// see exactly what a client of a real deployment sees.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// clusterStartAttempts bounds retries of a whole cluster start when a
	// pre-picked etcd peer port was taken by someone else in the meantime.
	clusterStartAttempts = 3
	// nodeReadyTimeout bounds how long a node may take to serve; the etcd
	// members of a cluster first wait for each other's quorum.
	nodeReadyTimeout = 30 * time.Second
	// nodeStopTimeout bounds a node's SIGTERM shutdown, longer than a
	// single broker's: a node first moves its leaderships to its peers.
	nodeStopTimeout = stopTimeout + 5*time.Second
)

// Cluster is a set of kbroker processes forming one cluster through their
// embedded etcd members. Nodes[i] has node.id i+1. Owned by the test
// goroutine.
type Cluster struct {
	t     *testing.T
	Nodes []*Node
}

// Node is one broker process of a Cluster, owned by the test goroutine.
type Node struct {
	*brokerProcess
	ID int32
	// LogDir survives Kill/Stop/Restart.
	LogDir string

	kafkaPort int // 0 until the first start has read it back
	overrides []string
}

// errPortTaken marks a start that failed because a pre-picked port was in
// use; the whole cluster start is retried with fresh ports.
var errPortTaken = errors.New("compat: port already in use")

// StartCluster starts n brokers (node.id 1..n), each embedding one member of
// an n-member etcd cluster, with the given extra overrides, and waits until
// every broker serves and a controller is known. Everything is stopped when
// the test ends; a failing test prints every node's stderr.
func StartCluster(t *testing.T, n int, overrides ...string) *Cluster {
	t.Helper()
	return startCluster(t, n, 0, overrides)
}

// StartClusterWithClients is StartCluster plus extra brokers (node.id n+1…)
// that embed no etcd member and use the members' etcd (etcd.endpoints), so
// they can all be down while the etcd quorum survives.
func StartClusterWithClients(t *testing.T, n, extra int, overrides ...string) *Cluster {
	t.Helper()
	return startCluster(t, n, extra, overrides)
}

func startCluster(t *testing.T, n, extra int, overrides []string) *Cluster {
	t.Helper()
	bin := brokerBin(t)
	c, root := newCluster(t)
	var lastErr error
	for attempt := 0; attempt < clusterStartAttempts; attempt++ {
		ports, err := freePorts(2 * n)
		if err != nil {
			t.Fatalf("pick etcd ports: %v", err)
		}
		var members, endpoints []string
		for i := 0; i < n; i++ {
			members = append(members, fmt.Sprintf("%d=http://127.0.0.1:%d", i+1, ports[i]))
			endpoints = append(endpoints, fmt.Sprintf("http://127.0.0.1:%d", ports[n+i]))
		}
		initial := strings.Join(members, ",")
		c.Nodes = nil
		for i := 0; i < n+extra; i++ {
			etcdArgs := []string{"etcd.endpoints=" + strings.Join(endpoints, ",")}
			if i < n {
				etcdArgs = []string{
					"etcd.embed.initial.cluster=" + initial,
					"etcd.embed.client.url=" + endpoints[i],
					fmt.Sprintf("etcd.embed.peer.url=http://127.0.0.1:%d", ports[i]),
				}
			}
			c.addNode(root, bin, 0, append(etcdArgs, overrides...))
		}
		lastErr = c.startNodes()
		if lastErr == nil {
			c.waitController(20 * time.Second)
			return c
		}
		c.shutdown()
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
		t.Logf("cluster start attempt %d: %v; retrying with new ports", attempt+1, lastErr)
	}
	t.Fatalf("start cluster: %v", lastErr)
	return nil
}

// newCluster returns a cluster without nodes that is shut down when the test
// ends, a failing test printing every node's stderr, and the directory for
// its nodes' log directories.
func newCluster(t *testing.T) (*Cluster, string) {
	t.Helper()
	c := &Cluster{t: t}
	// Made before the cleanup below is registered, so it is removed only
	// after every process has stopped (cleanups run last-in first-out).
	root := t.TempDir()
	t.Cleanup(func() {
		c.shutdown()
		if t.Failed() {
			for _, nd := range c.Nodes {
				nd.logStderr(nd.LogDir)
			}
		}
	})
	return c, root
}

// addNode adds node len(c.Nodes)+1, which runs bin with its log directory
// under root; kafkaPort 0 keeps the port its first start binds.
func (c *Cluster) addNode(root, bin string, kafkaPort int, overrides []string) {
	c.t.Helper()
	id := len(c.Nodes) + 1
	dir, err := os.MkdirTemp(root, fmt.Sprintf("node%d-", id))
	if err != nil {
		c.t.Fatalf("log dir: %v", err)
	}
	c.Nodes = append(c.Nodes, &Node{
		brokerProcess: newBrokerProcess(c.t, fmt.Sprintf("node %d", id), bin),
		ID:            int32(id),
		LogDir:        dir,
		kafkaPort:     kafkaPort,
		overrides:     overrides,
	})
}

// startNodes launches every node at once, since the etcd members wait for
// each other's quorum, and waits until all of them serve.
func (c *Cluster) startNodes() error {
	c.t.Helper()
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, nd := range c.Nodes {
		if err := nd.launch(nd.args()); err != nil {
			c.t.Fatalf("node %d: %v", nd.ID, err)
		}
		wg.Go(func() { errs[i] = nd.awaitServing(nodeReadyTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// freePorts returns n distinct ports that were free a moment ago. The etcd
// initial cluster must name every peer URL before any member starts, so
// these cannot be read back from a listener; a start that loses the race is
// retried.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Node returns the node with the given node.id.
func (c *Cluster) Node(id int32) *Node {
	c.t.Helper()
	if id < 1 || int(id) > len(c.Nodes) {
		c.t.Fatalf("no node %d in a cluster of %d", id, len(c.Nodes))
	}
	return c.Nodes[id-1]
}

// Addrs returns the addresses of the nodes that run and are not paused.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, nd := range c.Nodes {
		if nd.running() && !nd.isPaused() {
			out = append(out, nd.Addr())
		}
	}
	return out
}

// Client returns a franz-go client seeded with every live node, closed when
// the test ends. Short timeouts keep a dead or paused broker from stalling
// a test for long.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	return c.clientFor(c.Addrs(), opts...)
}

// NodeClient returns a client whose only seed is node nd.
func (c *Cluster) NodeClient(nd *Node, opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	return c.clientFor([]string{nd.Addr()}, opts...)
}

func (c *Cluster) clientFor(seeds []string, opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryTimeout(30 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		c.t.Fatalf("new client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client over every live node.
func (c *Cluster) Admin() *kadm.Client {
	c.t.Helper()
	return kadm.NewClient(c.Client())
}

// waitController waits until some live node names a controller.
func (c *Cluster) waitController(d time.Duration) int32 {
	c.t.Helper()
	var id int32 = -1
	waitFor(c.t, d, "a controller is elected", func() error {
		var err error
		for _, nd := range c.Nodes {
			if !nd.running() || nd.isPaused() {
				continue
			}
			if id, err = c.ControllerSeenBy(nd); err == nil && id > 0 {
				return nil
			}
		}
		return fmt.Errorf("no live node names a controller (last: %d, %v)", id, err)
	})
	return id
}

// ControllerSeenBy asks node nd (DescribeCluster) which broker is the
// controller.
func (c *Cluster) ControllerSeenBy(nd *Node) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(nd.Addr()), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeClusterRequest()
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return -1, fmt.Errorf("DescribeCluster to node %d: %w", nd.ID, err)
	}
	resp := kresp.(*kmsg.DescribeClusterResponse)
	if err != nil {
		return -1, fmt.Errorf("DescribeCluster to node %d: %w", nd.ID, err)
	}
	if resp.ErrorCode != 0 {
		return -1, fmt.Errorf("DescribeCluster to node %d: error code %d", nd.ID, resp.ErrorCode)
	}
	return resp.ControllerID, nil
}

// shutdown is the cleanup path: SIGTERM every running node at once (a
// quorum must survive each node's controlled shutdown), paused ones
// included, and report nodes that died on their own.
func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for _, nd := range c.Nodes {
		wg.Go(func() { nd.shutdown(nodeStopTimeout) })
	}
	wg.Wait()
}

func (n *Node) args() []string {
	args := []string{
		"--override", fmt.Sprintf("node.id=%d", n.ID),
		"--override", fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d", n.kafkaPort),
		"--override", "log.dirs=" + n.LogDir,
	}
	for _, o := range n.overrides {
		// "{id}" stands for the node's ID, for keys that differ per node
		// (broker.rack=rack-{id}).
		args = append(args, "--override", strings.ReplaceAll(o, "{id}", strconv.Itoa(int(n.ID))))
	}
	return args
}

// awaitServing waits for the ready line of the run launch started and, on
// the node's first start, keeps the Kafka port it bound for restarts.
func (n *Node) awaitServing(d time.Duration) error {
	err := n.awaitReady(d)
	if errors.Is(err, errExitedBeforeServing) && strings.Contains(n.Stderr(), "address already in use") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	if err != nil {
		return err
	}
	if n.kafkaPort == 0 {
		_, port, _ := net.SplitHostPort(n.Addr())
		fmt.Sscan(port, &n.kafkaPort)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (n *Node) Kill() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("kill node %d: not running", n.ID)
	}
	n.kill()
}

// Stop sends SIGTERM (a controlled shutdown) and fails the test unless the
// node exits with status 0 within nodeStopTimeout.
func (n *Node) Stop() {
	n.t.Helper()
	n.stop(nodeStopTimeout)
}

// Restart starts the node again (after Kill or Stop; a running node is
// stopped first) on the same log directory, etcd peer port and Kafka port,
// and waits until it serves.
func (n *Node) Restart() {
	n.t.Helper()
	if n.running() {
		n.Stop()
	}
	if err := n.launch(n.args()); err != nil {
		n.t.Fatalf("restart node %d: %v", n.ID, err)
	}
	if err := n.awaitServing(nodeReadyTimeout); err != nil {
		n.t.Fatalf("restart node %d: %v", n.ID, err)
	}
}

// Pause stops the process with SIGSTOP: it keeps its sockets but runs
// nothing — no etcd heartbeats, no lease renewals, no replies. It returns
// once every thread is stopped.
func (n *Node) Pause() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("pause node %d: not running", n.ID)
	}
	if err := n.pause(); err != nil {
		n.t.Fatalf("pause node %d: %v", n.ID, err)
	}
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() {
	n.t.Helper()
	n.resume()
}

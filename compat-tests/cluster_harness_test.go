package compat

// A multi-process cluster harness: three kbroker processes, each embedding
// one member of a three-member etcd cluster (etcd.embed.initial.cluster), as
// a KRaft combined-mode quorum would be deployed. Nodes can be killed
// (SIGKILL), stopped (SIGTERM), restarted on the same log directory, etcd
// peer port and Kafka port, and paused/resumed (SIGSTOP/SIGCONT), so tests
// see exactly what a client of a real deployment sees.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterStartAttempts bounds retries of a whole cluster start when a
// pre-picked etcd peer port was taken by someone else in the meantime.
const clusterStartAttempts = 3

// Cluster is a set of kbroker processes forming one cluster through their
// embedded etcd members. Nodes[i] has node.id i+1. Owned by the test
// goroutine.
type Cluster struct {
	t     *testing.T
	Nodes []*Node
}

// Node is one broker process of a Cluster. The exit watcher goroutine only
// closes exited and sets waitErr; everything else belongs to the test.
type Node struct {
	t  *testing.T
	ID int32
	// LogDir survives Kill/Stop/Restart.
	LogDir string

	bin       string
	kafkaPort int // 0 until the first start has read it back
	overrides []string
	stderr    *syncBuffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	addr     string
	exited   chan struct{}
	ready    chan readyResult // the current process's ready line
	waitErr  error
	starts   int
	intended bool // the test stopped or killed this process itself
	paused   bool
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
	c := &Cluster{t: t}
	// Made before the cleanup below is registered, so it is removed only
	// after every process has stopped (cleanups run last-in first-out).
	root := t.TempDir()
	t.Cleanup(func() {
		c.shutdown()
		if t.Failed() {
			for _, nd := range c.Nodes {
				out := nd.stderr.String()
				if len(out) > stderrTail {
					out = "…(truncated)…\n" + out[len(out)-stderrTail:]
				}
				t.Logf("node %d stderr (%s):\n%s", nd.ID, nd.LogDir, out)
			}
		}
	})
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
			dir, err := os.MkdirTemp(root, fmt.Sprintf("node%d-", i+1))
			if err != nil {
				t.Fatalf("log dir: %v", err)
			}
			etcdArgs := []string{"etcd.endpoints=" + strings.Join(endpoints, ",")}
			if i < n {
				etcdArgs = []string{
					"etcd.embed.initial.cluster=" + initial,
					"etcd.embed.client.url=" + endpoints[i],
					fmt.Sprintf("etcd.embed.peer.url=http://127.0.0.1:%d", ports[i]),
				}
			}
			c.Nodes = append(c.Nodes, &Node{
				t: t, ID: int32(i + 1), LogDir: dir, bin: bin,
				overrides: append(etcdArgs, overrides...),
				stderr:    new(syncBuffer),
			})
		}
		// The members wait for each other's quorum: launch all, then wait.
		errs := make([]error, n+extra)
		var wg sync.WaitGroup
		for i, nd := range c.Nodes {
			if err := nd.launch(); err != nil {
				t.Fatalf("node %d: %v", nd.ID, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = nd.awaitReady(30 * time.Second)
			}()
		}
		wg.Wait()
		lastErr = errors.Join(errs...)
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

// shutdown is the cleanup path: resume paused nodes, then SIGTERM every
// running node at once (a quorum must survive each node's controlled
// shutdown) and report nodes that died on their own.
func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for _, nd := range c.Nodes {
		if nd.running() {
			nd.signal(syscall.SIGCONT)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := nd.terminate(); err != nil {
					nd.t.Logf("cleanup of node %d: %v", nd.ID, err)
				}
			}()
			continue
		}
		if err := nd.crashed(); err != nil {
			nd.t.Error(err)
		}
	}
	wg.Wait()
}

// Addr is the host:port the node serves Kafka on.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Stderr returns everything the node's processes wrote to stderr.
func (n *Node) Stderr() string { return n.stderr.String() }

func (n *Node) args() []string {
	args := []string{
		"--override", fmt.Sprintf("node.id=%d", n.ID),
		"--override", fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d", n.kafkaPort),
		"--override", "log.dirs=" + n.LogDir,
	}
	for _, o := range n.overrides {
		args = append(args, "--override", o)
	}
	return args
}

// readyResult carries the ready line's address from the stderr copier.
type readyResult struct {
	addr string
}

// launch starts the process without waiting for it to serve.
func (n *Node) launch() error {
	n.mu.Lock()
	n.starts++
	num := n.starts
	n.mu.Unlock()

	cmd := exec.Command(n.bin, n.args()...)
	cmd.Stdout = io.Discard
	setDeathSignal(cmd)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	fmt.Fprintf(n.stderr, "=== node %d start #%d: %s\n", n.ID, num, strings.Join(n.args(), " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kbroker: %w", err)
	}
	found := make(chan readyResult, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		reported := false
		for sc.Scan() {
			line := sc.Text()
			n.stderr.Write([]byte(line + "\n"))
			if !reported {
				if m := readyLine.FindStringSubmatch(line); m != nil {
					reported = true
					found <- readyResult{addr: m[1]}
				}
			}
		}
		_, _ = io.Copy(n.stderr, pr)
	}()
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.waitErr, n.addr, n.intended, n.paused = cmd, exited, nil, "", false, false
	n.ready = found
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		pw.Close()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// awaitReady waits for the ready line of the process launch started; on
// failure the process is killed.
func (n *Node) awaitReady(d time.Duration) error {
	n.mu.Lock()
	cmd, exited, found := n.cmd, n.exited, n.ready
	n.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-found:
		n.mu.Lock()
		n.addr = r.addr
		if n.kafkaPort == 0 {
			_, port, _ := net.SplitHostPort(r.addr)
			fmt.Sscan(port, &n.kafkaPort)
		}
		n.mu.Unlock()
		return nil
	case <-exited:
		n.mu.Lock()
		n.intended = true
		n.mu.Unlock()
		err := fmt.Errorf("node %d exited before serving (%v)", n.ID, n.exitErr())
		if strings.Contains(n.stderr.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return err
	case <-timer.C:
		n.mu.Lock()
		n.intended = true
		n.mu.Unlock()
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("node %d did not log %q within %v", n.ID, `msg="serving Kafka protocol"`, d)
	}
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// running reports whether the node's current process is alive (it may be
// paused).
func (n *Node) running() bool {
	n.mu.Lock()
	ch := n.exited
	n.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func (n *Node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (n *Node) Kill() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("kill node %d: not running", n.ID)
	}
	n.mu.Lock()
	n.intended, n.paused = true, false
	ch := n.exited
	n.mu.Unlock()
	n.signal(syscall.SIGKILL)
	<-ch
	fmt.Fprintf(n.stderr, "=== node %d killed with SIGKILL\n", n.ID)
}

// Stop sends SIGTERM (a controlled shutdown) and fails the test unless the
// node exits with status 0 within stopTimeout.
func (n *Node) Stop() {
	n.t.Helper()
	if err := n.terminate(); err != nil {
		n.t.Errorf("node %d SIGTERM shutdown: %v", n.ID, err)
	}
}

// terminate is Stop without failing the test; it escalates to SIGKILL.
func (n *Node) terminate() error {
	n.mu.Lock()
	cmd, ch := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-ch:
		return fmt.Errorf("node had already exited: %v", n.exitErr())
	default:
	}
	n.mu.Lock()
	n.intended, n.paused = true, false
	n.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout + 5*time.Second)
	defer timer.Stop()
	select {
	case <-ch:
		fmt.Fprintf(n.stderr, "=== node %d stopped with SIGTERM: %v\n", n.ID, n.exitErr())
		if err := n.exitErr(); err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", err)
		}
		return nil
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-ch
		return fmt.Errorf("still running %v after SIGTERM; killed", stopTimeout+5*time.Second)
	}
}

// crashed returns an error if the process exited without the test asking.
func (n *Node) crashed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.intended {
		return nil
	}
	select {
	case <-n.exited:
		return fmt.Errorf("node %d exited on its own during the test (%v); see its stderr below", n.ID, n.waitErr)
	default:
		return nil
	}
}

// Restart starts the node again (after Kill or Stop; a running node is
// stopped first) on the same log directory, etcd peer port and Kafka port,
// and waits until it serves.
func (n *Node) Restart() {
	n.t.Helper()
	if n.running() {
		n.Stop()
	}
	if err := n.launch(); err != nil {
		n.t.Fatalf("restart node %d: %v", n.ID, err)
	}
	if err := n.awaitReady(30 * time.Second); err != nil {
		n.t.Fatalf("restart node %d: %v", n.ID, err)
	}
}

// Pause stops the process with SIGSTOP: it keeps its sockets but runs
// nothing — no etcd heartbeats, no lease renewals, no replies.
func (n *Node) Pause() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("pause node %d: not running", n.ID)
	}
	n.signal(syscall.SIGSTOP)
	// kill(2) returns before the stop takes effect: a thread running on
	// another CPU stops only when it next returns to user mode. Wait until
	// every thread is stopped, so nothing sent after Pause is processed.
	if err := n.waitStopped(5 * time.Second); err != nil {
		n.t.Fatalf("pause node %d: %v", n.ID, err)
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	fmt.Fprintf(n.stderr, "=== node %d paused with SIGSTOP at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
}

// waitStopped polls /proc until every thread of the process is in the
// stopped state ('T').
func (n *Node) waitStopped(timeout time.Duration) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return errors.New("no process")
	}
	tasks := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(tasks)
		if err == nil && running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("threads still running %s after SIGSTOP (%d running, err %v)", timeout, running, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads under a /proc/<pid>/task directory
// that are not stopped.
func runningThreads(tasks string) (int, error) {
	ents, err := os.ReadDir(tasks)
	if err != nil {
		return 0, err
	}
	running := 0
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join(tasks, e.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// The state follows the parenthesised command name, which may
		// itself hold spaces or parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return 0, fmt.Errorf("unparsable %s", filepath.Join(tasks, e.Name(), "stat"))
		}
		if state := stat[i+2]; state != 'T' && state != 't' {
			running++
		}
	}
	return running, nil
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() {
	n.t.Helper()
	n.signal(syscall.SIGCONT)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	fmt.Fprintf(n.stderr, "=== node %d resumed with SIGCONT at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
}

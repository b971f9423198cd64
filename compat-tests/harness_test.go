// Package compat drives a built kbroker binary with real, unmodified Kafka
// clients (franz-go, Sarama, kcat/librdkafka, kafka-python) and with raw bytes
// on a TCP socket. It speaks to the broker only over the network, exactly as a
// user's client would, so a pass here means the wire behaviour matches Kafka.
//
// The binary comes from $KBROKER_BIN (default ../bin/kbroker, built by
// `make build` at the repository root). Every test starts its own broker
// process on 127.0.0.1:0 with a fresh log directory; the broker's stderr is
// kept and printed when the test fails.
package compat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a broker may take to log that it serves.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds a SIGTERM shutdown; the contract is "a few seconds".
	stopTimeout = 10 * time.Second
	// stderrTail is how much of a broker's stderr a failing test prints.
	stderrTail = 64 << 10
)

// readyLine matches the broker's "serving" log line and captures its address.
// slog's TextHandler may quote the value, so the quotes are optional.
var readyLine = regexp.MustCompile(`msg="serving Kafka protocol".*\baddr="?([0-9.]+:[0-9]+)"?`)

// Broker is one kbroker process under test. Its fields are owned by the
// test goroutine; the exit watcher only closes exited and sets waitErr.
type Broker struct {
	t *testing.T
	// LogDir is the broker's log.dirs; it survives Kill/Stop/Restart.
	LogDir string

	bin       string
	overrides []string
	stderr    *syncBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	addr    string
	exited  chan struct{}
	waitErr error
	starts  int
	// intended is set when the test itself stops or kills the process,
	// so an exit without it is reported as a crash.
	intended bool
}

// syncBuffer is a bytes.Buffer safe for the process's stderr copier and the
// test reading it at the same time.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// brokerBin resolves the binary under test and fails the test when it is
// missing: a compat run without a broker proves nothing.
func brokerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KBROKER_BIN")
	if bin == "" {
		bin = filepath.Join("..", "bin", "kbroker")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolve broker binary %q: %v", bin, err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("broker binary %s not found (run `make build` at the repo root or set KBROKER_BIN): %v", abs, err)
	}
	return abs
}

// StartBroker starts a single-node broker with a fresh log directory and the
// given extra overrides ("key=value", Kafka key names). An override of
// log.dirs replaces the temporary directory. The broker is stopped when the
// test ends, and its stderr is printed if the test failed.
func StartBroker(t *testing.T, overrides ...string) *Broker {
	t.Helper()
	b := &Broker{
		t:      t,
		bin:    brokerBin(t),
		stderr: new(syncBuffer),
	}
	for _, o := range overrides {
		if v, ok := strings.CutPrefix(o, "log.dirs="); ok {
			b.LogDir = v
			continue
		}
		b.overrides = append(b.overrides, o)
	}
	if b.LogDir == "" {
		b.LogDir = t.TempDir()
	}
	t.Cleanup(func() {
		b.shutdown()
		if t.Failed() {
			out := b.stderr.String()
			if len(out) > stderrTail {
				out = "…(truncated)…\n" + out[len(out)-stderrTail:]
			}
			t.Logf("kbroker stderr (%s):\n%s", b.LogDir, out)
		}
	})
	b.start()
	return b
}

// Addr is the host:port the broker advertised in its ready line.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Stderr returns everything the broker process(es) wrote to stderr so far.
func (b *Broker) Stderr() string { return b.stderr.String() }

func (b *Broker) args() []string {
	args := []string{
		"--override", "node.id=1",
		"--override", "listeners=PLAINTEXT://127.0.0.1:0",
		"--override", "log.dirs=" + b.LogDir,
		"--override", "etcd.embed.client.url=http://127.0.0.1:0",
		"--override", "etcd.embed.peer.url=http://127.0.0.1:0",
	}
	for _, o := range b.overrides {
		args = append(args, "--override", o)
	}
	return args
}

// start launches the process and waits for its ready line.
func (b *Broker) start() {
	b.t.Helper()
	b.mu.Lock()
	b.starts++
	n := b.starts
	b.mu.Unlock()

	cmd := exec.Command(b.bin, b.args()...)
	cmd.Stdout = io.Discard
	setDeathSignal(cmd)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	fmt.Fprintf(b.stderr, "=== kbroker start #%d: %s %s\n", n, b.bin, strings.Join(b.args(), " "))
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start kbroker: %v", err)
	}

	found := make(chan string, 1)
	go func() {
		// Copy every line into the buffer; report the first ready line.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		reported := false
		for sc.Scan() {
			line := sc.Text()
			b.stderr.Write([]byte(line + "\n"))
			if !reported {
				if m := readyLine.FindStringSubmatch(line); m != nil {
					reported = true
					found <- m[1]
				}
			}
		}
		_, _ = io.Copy(b.stderr, pr)
	}()
	exited := make(chan struct{})
	b.mu.Lock()
	b.cmd = cmd
	b.exited = exited
	b.waitErr = nil
	b.addr = ""
	b.intended = false
	b.mu.Unlock()
	go func() {
		err := cmd.Wait()
		pw.Close()
		b.mu.Lock()
		b.waitErr = err
		b.mu.Unlock()
		close(exited)
	}()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case addr := <-found:
		b.mu.Lock()
		b.addr = addr
		b.mu.Unlock()
	case <-exited:
		b.t.Fatalf("kbroker exited before serving (%v); stderr:\n%s", b.exitErr(), b.stderr.String())
	case <-timer.C:
		b.mu.Lock()
		b.intended = true
		b.mu.Unlock()
		_ = cmd.Process.Kill()
		<-exited
		b.t.Fatalf("kbroker did not log %q within %v; stderr:\n%s", `msg="serving Kafka protocol"`, readyTimeout, b.stderr.String())
	}
}

func (b *Broker) exitErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waitErr
}

// running reports whether the current process is still alive.
func (b *Broker) running() bool {
	b.mu.Lock()
	ch := b.exited
	b.mu.Unlock()
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

// Kill sends SIGKILL and waits for the process to be gone: a crash with no
// chance to flush or close anything.
func (b *Broker) Kill() {
	b.t.Helper()
	b.mu.Lock()
	cmd, ch := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	b.mu.Lock()
	b.intended = true
	b.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-ch
	fmt.Fprintf(b.stderr, "=== kbroker killed with SIGKILL\n")
}

// Stop sends SIGTERM and fails the test unless the broker exits cleanly
// (status 0) within stopTimeout.
func (b *Broker) Stop() {
	b.t.Helper()
	if err := b.terminate(); err != nil {
		b.t.Errorf("kbroker SIGTERM shutdown: %v", err)
	}
}

// terminate is Stop without failing the test; it escalates to SIGKILL.
func (b *Broker) terminate() error {
	b.mu.Lock()
	cmd, ch := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-ch:
		return fmt.Errorf("broker had already exited: %v", b.exitErr())
	default:
	}
	b.mu.Lock()
	b.intended = true
	b.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-ch:
		fmt.Fprintf(b.stderr, "=== kbroker stopped with SIGTERM: %v\n", b.exitErr())
		if err := b.exitErr(); err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", err)
		}
		return nil
	case <-timer.C:
		b.mu.Lock()
		b.intended = true
		b.mu.Unlock()
		_ = cmd.Process.Kill()
		<-ch
		return fmt.Errorf("still running %v after SIGTERM; killed", stopTimeout)
	}
}

// shutdown is the cleanup path: stop whatever still runs, and report a
// process that died on its own as a failure.
func (b *Broker) shutdown() {
	if b.running() {
		if err := b.terminate(); err != nil {
			b.t.Logf("cleanup: %v", err)
		}
		return
	}
	if err := b.crashed(); err != nil {
		b.t.Error(err)
	}
}

// crashed returns an error if the current process exited without the test
// stopping or killing it.
func (b *Broker) crashed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.intended {
		return nil
	}
	select {
	case <-b.exited:
		return fmt.Errorf("kbroker exited on its own during the test (%v); see its stderr below", b.waitErr)
	default:
		return nil
	}
}

// Restart stops the broker if it still runs (SIGTERM) and starts it again on
// the same log directory. The port may change: read Addr() again and build
// new clients.
func (b *Broker) Restart() {
	b.t.Helper()
	if b.running() {
		b.Stop()
	}
	b.start()
}

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20ms until it returns nil or the deadline passes,
// then fails with the last error.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireTool finds an external program. Under CI=1 a missing tool fails the
// test (CI installs it); in a developer's shell the test is skipped.
func requireTool(t *testing.T, path, why string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	missingTool(t, fmt.Sprintf("%s not available (%v): %s", path, err, why))
	return ""
}

// missingTool fails under CI (where .ci/run installs every tool) and skips in
// a developer's shell.
func missingTool(t *testing.T, msg string) {
	t.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
		t.Fatalf("CI is set, so this must not be skipped: %s", msg)
	}
	t.Skip(msg)
}

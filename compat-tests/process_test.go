package compat

// The process handling shared by the single-broker harness (Broker) and the
// multi-process cluster harness (Node): starting a kbroker binary, keeping
// its stderr, reading its ready line, signalling it and telling an exit the
// test asked for from a crash.

import (
	"bufio"
	"bytes"
	"errors"
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

// stderrTail is how much of a broker's stderr a failing test prints.
const stderrTail = 64 << 10

// readyLine matches the broker's "serving" log line and captures its address.
// slog's TextHandler may quote the value, so the quotes are optional.
var readyLine = regexp.MustCompile(`msg="serving Kafka protocol".*\baddr="?([0-9.]+:[0-9]+)"?`)

// errExitedBeforeServing marks a run that ended before its ready line, so
// the cluster harness can look for the cause in its stderr.
var errExitedBeforeServing = errors.New("exited before serving")

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

// tail returns the last n bytes of s, marked as cut when it is longer.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…(truncated)…\n" + s[len(s)-n:]
}

// brokerProcess runs one kbroker binary, one run at a time, and keeps the
// stderr of every run in one buffer, with "=== <label> …" lines marking
// starts, signals and exits. The exit watcher goroutine only closes exited
// and sets waitErr, the stderr copier only writes stderr and sends on
// ready; everything else belongs to the test goroutine.
type brokerProcess struct {
	t *testing.T
	// label names the process in messages and markers: "kbroker", "node 2".
	label  string
	bin    string
	stderr *syncBuffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	addr     string
	exited   chan struct{}
	ready    chan string // the current run's address, from its ready line
	waitErr  error
	starts   int
	intended bool // the test stopped or killed the current run itself
	paused   bool
}

func newBrokerProcess(t *testing.T, label, bin string) *brokerProcess {
	return &brokerProcess{t: t, label: label, bin: bin, stderr: new(syncBuffer)}
}

// Addr is the host:port the current run advertised in its ready line.
func (p *brokerProcess) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Stderr returns everything the process's runs wrote to stderr so far.
func (p *brokerProcess) Stderr() string { return p.stderr.String() }

// launch starts a run with args without waiting for it to serve.
func (p *brokerProcess) launch(args []string) error {
	p.mu.Lock()
	p.starts++
	n := p.starts
	p.mu.Unlock()

	cmd := exec.Command(p.bin, args...)
	cmd.Stdout = io.Discard
	setDeathSignal(cmd)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	fmt.Fprintf(p.stderr, "=== %s start #%d: %s %s\n", p.label, n, p.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kbroker: %w", err)
	}
	ready := make(chan string, 1)
	go p.copyStderr(pr, ready)
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.ready = cmd, exited, ready
	p.waitErr, p.addr, p.intended, p.paused = nil, "", false, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// copyStderr copies every line of a run's stderr into the buffer and sends
// the address of the first ready line on ready.
func (p *brokerProcess) copyStderr(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	reported := false
	for sc.Scan() {
		line := sc.Text()
		p.stderr.Write([]byte(line + "\n"))
		if !reported {
			if m := readyLine.FindStringSubmatch(line); m != nil {
				reported = true
				ready <- m[1]
			}
		}
	}
	// A line too long for the scanner ends it; keep the rest anyway.
	_, _ = io.Copy(p.stderr, r)
}

// awaitReady waits up to d for the ready line of the run launch started. A
// run that does not serve in time is killed; either failure counts as an
// exit the test asked for, since the returned error reports it.
func (p *brokerProcess) awaitReady(d time.Duration) error {
	p.mu.Lock()
	cmd, exited, ready := p.cmd, p.exited, p.ready
	p.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case addr := <-ready:
		p.mu.Lock()
		p.addr = addr
		p.mu.Unlock()
		return nil
	case <-exited:
		p.markIntended()
		return fmt.Errorf("%s %w (%v)", p.label, errExitedBeforeServing, p.exitErr())
	case <-timer.C:
		p.markIntended()
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not log %q within %v", p.label, `msg="serving Kafka protocol"`, d)
	}
}

// markIntended records that the test itself ends the current run, which
// also ends any pause.
func (p *brokerProcess) markIntended() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intended, p.paused = true, false
}

func (p *brokerProcess) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// running reports whether the current run is alive (it may be paused).
func (p *brokerProcess) running() bool {
	p.mu.Lock()
	ch := p.exited
	p.mu.Unlock()
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

func (p *brokerProcess) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

func (p *brokerProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// kill sends SIGKILL and waits until the run is gone: a crash with no
// chance to flush or close anything.
func (p *brokerProcess) kill() {
	p.mu.Lock()
	cmd, ch := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	p.markIntended()
	p.signal(syscall.SIGKILL)
	<-ch
	fmt.Fprintf(p.stderr, "=== %s killed with SIGKILL\n", p.label)
}

// stop is a SIGTERM shutdown that fails the test unless the run exits with
// status 0 within timeout.
func (p *brokerProcess) stop(timeout time.Duration) {
	p.t.Helper()
	if err := p.terminate(timeout); err != nil {
		p.t.Errorf("%s SIGTERM shutdown: %v", p.label, err)
	}
}

// terminate is stop without failing the test; it escalates to SIGKILL.
func (p *brokerProcess) terminate(timeout time.Duration) error {
	p.mu.Lock()
	cmd, ch := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-ch:
		return fmt.Errorf("process had already exited: %v", p.exitErr())
	default:
	}
	p.markIntended()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
		fmt.Fprintf(p.stderr, "=== %s stopped with SIGTERM: %v\n", p.label, p.exitErr())
		if err := p.exitErr(); err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", err)
		}
		return nil
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-ch
		return fmt.Errorf("still running %v after SIGTERM; killed", timeout)
	}
}

// shutdown is the cleanup path: stop the run if it still runs (continuing
// it first, as a stopped process would never act on SIGTERM), and report a
// run that died on its own as a failure. Safe from any goroutine.
func (p *brokerProcess) shutdown(timeout time.Duration) {
	if p.running() {
		p.signal(syscall.SIGCONT)
		if err := p.terminate(timeout); err != nil {
			p.t.Logf("cleanup of %s: %v", p.label, err)
		}
		return
	}
	if err := p.crashed(); err != nil {
		p.t.Error(err)
	}
}

// crashed returns an error if the current run exited without the test
// stopping or killing it.
func (p *brokerProcess) crashed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.intended {
		return nil
	}
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited on its own during the test (%v); see its stderr below", p.label, p.waitErr)
	default:
		return nil
	}
}

// logStderr prints the tail of the process's stderr, for a failed test.
func (p *brokerProcess) logStderr(logDir string) {
	p.t.Logf("%s stderr (%s):\n%s", p.label, logDir, tail(p.stderr.String(), stderrTail))
}

// pause stops the run with SIGSTOP: it keeps its sockets but runs nothing.
func (p *brokerProcess) pause() error {
	p.signal(syscall.SIGSTOP)
	// kill(2) returns before the stop takes effect: a thread running on
	// another CPU stops only when it next returns to user mode. Wait until
	// every thread is stopped, so nothing sent after pause is processed.
	if err := p.waitStopped(5 * time.Second); err != nil {
		return err
	}
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
	fmt.Fprintf(p.stderr, "=== %s paused with SIGSTOP at %s\n", p.label, time.Now().Format(time.RFC3339Nano))
	return nil
}

// resume continues a paused run with SIGCONT.
func (p *brokerProcess) resume() {
	p.signal(syscall.SIGCONT)
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
	fmt.Fprintf(p.stderr, "=== %s resumed with SIGCONT at %s\n", p.label, time.Now().Format(time.RFC3339Nano))
}

// waitStopped polls /proc until every thread of the run is in the stopped
// state ('T').
func (p *brokerProcess) waitStopped(timeout time.Duration) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
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

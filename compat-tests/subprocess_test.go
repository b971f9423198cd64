package compat

// Subprocess clients: the test binary runs itself again with one Test
// function as the whole child (TestGroupMemberProcess,
// TestTxnCopierProcess), so the parent can SIGKILL a client in mid-flight —
// a real crash that sends nothing more, which an in-process client cannot
// fake. The parent hands the child its configuration as JSON in an
// environment variable; the child reports events as prefixed JSON lines on
// its stdout.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// subprocessRole is one kind of subprocess client.
type subprocessRole struct {
	what   string // names the role in messages: "group member"
	test   string // the Test function that is the child's body
	env    string // carries the child's JSON configuration
	prefix string // marks the child's event lines on its stdout
	// stderrShown is how much of a child's stderr a failing test prints.
	stderrShown int
}

// config starts the child's Test function: it skips unless this process
// runs as role r, and decodes the parent's configuration into cfg.
func (r subprocessRole) config(t *testing.T, cfg any) {
	t.Helper()
	raw := os.Getenv(r.env)
	if raw == "" {
		t.Skipf("only runs as a %s subprocess", r.what)
	}
	if err := json.Unmarshal([]byte(raw), cfg); err != nil {
		t.Fatalf("parse %s: %v", r.env, err)
	}
}

// eventEmitter returns how a child of role r reports an event to its
// parent; client callbacks may call it concurrently.
func eventEmitter[E any](r subprocessRole) func(E) {
	var mu sync.Mutex
	return func(ev E) {
		line, _ := json.Marshal(ev)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s%s\n", r.prefix, line)
	}
}

// subprocess is the parent's handle on one child.
type subprocess struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once its stdout is drained and it is reaped
	stderr *syncBuffer
}

// startSubprocess runs this test binary as a child of role r, configured
// by cfg, and hands each of the child's event lines, without the prefix,
// to onEvent on one goroutine. The child is killed when the test ends; a
// failing test prints the end of its stderr.
func startSubprocess(t *testing.T, r subprocessRole, name string, cfg any, onEvent func(line string)) *subprocess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encode %s configuration: %v", r.what, err)
	}
	cmd := exec.Command(exe, "-test.run=^"+r.test+"$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), r.env+"="+string(raw))
	setDeathSignal(cmd)
	sp := &subprocess{name: name, cmd: cmd, exited: make(chan struct{}), stderr: new(syncBuffer)}
	cmd.Stderr = sp.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %s: %v", r.what, name, err)
	}
	go func() {
		readEvents(out, r.prefix, onEvent)
		// Wait closes the pipe, so only after every event is read.
		_ = cmd.Wait()
		close(sp.exited)
	}()
	t.Cleanup(func() {
		sp.kill()
		if t.Failed() {
			t.Logf("%s %s (pid %d) stderr:\n%s", r.what, name, cmd.Process.Pid, tail(sp.stderr.String(), r.stderrShown))
		}
	})
	return sp
}

// readEvents passes the lines of out that start with prefix to onEvent,
// without the prefix, until EOF.
func readEvents(out io.Reader, prefix string, onEvent func(line string)) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			onEvent(line)
		}
	}
}

// kill sends SIGKILL and waits for the child and its last events. It
// reports whether the child was still alive to be killed, so it is safe to
// call twice.
func (sp *subprocess) kill() bool {
	if !sp.alive() {
		return false
	}
	_ = sp.cmd.Process.Signal(syscall.SIGKILL)
	<-sp.exited
	return true
}

func (sp *subprocess) alive() bool {
	select {
	case <-sp.exited:
		return false
	default:
		return true
	}
}

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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a broker may take to log that it serves.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds a SIGTERM shutdown; the contract is "a few seconds".
	stopTimeout = 10 * time.Second
)

// Broker is one kbroker process under test, owned by the test goroutine.
type Broker struct {
	*brokerProcess
	// LogDir is the broker's log.dirs; it survives Kill/Stop/Restart.
	LogDir string

	overrides []string
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
	b := &Broker{brokerProcess: newBrokerProcess(t, "kbroker", brokerBin(t))}
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
		b.shutdown(stopTimeout)
		if t.Failed() {
			b.logStderr(b.LogDir)
		}
	})
	b.start()
	return b
}

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
	if err := b.launch(b.args()); err != nil {
		b.t.Fatal(err)
	}
	if err := b.awaitReady(readyTimeout); err != nil {
		b.t.Fatalf("%v; stderr:\n%s", err, b.Stderr())
	}
}

// Kill sends SIGKILL and waits for the process to be gone: a crash with no
// chance to flush or close anything.
func (b *Broker) Kill() {
	b.t.Helper()
	b.kill()
}

// Stop sends SIGTERM and fails the test unless the broker exits cleanly
// (status 0) within stopTimeout.
func (b *Broker) Stop() {
	b.t.Helper()
	b.stop(stopTimeout)
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

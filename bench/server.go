package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readyMsg is the slog message both kbroker and our kfakeserver print once
// their Kafka listener accepts connections; the line also carries addr=.
const readyMsg = `msg="serving Kafka protocol"`

var (
	// errNoAddr reports a readiness line without a usable addr= field.
	errNoAddr = errors.New("bench: readiness line has no addr")
	// errExited reports a broker process that exited while we needed it.
	errExited = errors.New("bench: broker process exited")
)

// serverSpec says how to start one kind of broker.
type serverSpec struct {
	label string // column heading, e.g. "kbroker" or "kfake(disk)"
	bin   string
	// args returns the command line for a fresh instance keeping its data
	// in dataDir.
	args func(dataDir string) []string
}

// kbrokerSpec starts the kbroker binary at bin on an ephemeral port with an
// embedded single-member etcd.
func kbrokerSpec(bin string) serverSpec {
	return serverSpec{
		label: "kbroker",
		bin:   bin,
		args: func(dir string) []string {
			return []string{
				"--override", "node.id=1",
				"--override", "listeners=PLAINTEXT://127.0.0.1:0",
				"--override", "log.dirs=" + dir,
				"--override", "etcd.embed.client.url=http://127.0.0.1:0",
				"--override", "etcd.embed.peer.url=http://127.0.0.1:0",
			}
		},
	}
}

// kfakeSpec starts our kfakeserver wrapper at bin; with onDisk false kfake
// keeps everything in memory.
func kfakeSpec(bin, label string, onDisk bool) serverSpec {
	return serverSpec{
		label: label,
		bin:   bin,
		args: func(dir string) []string {
			if !onDisk {
				return []string{"-port", "0"}
			}
			return []string{"-port", "0", "-data-dir", dir}
		},
	}
}

// server is one running broker process. It is owned by the benchmark's
// main goroutine; only the exit fields are written by the waiter goroutine,
// and they are read after done is closed.
type server struct {
	spec    serverSpec
	cmd     *exec.Cmd
	pid     int
	addr    string
	dataDir string
	logPath string

	lineReady  time.Duration // exec until the readiness log line
	serving    time.Duration // exec until a Metadata request succeeded
	idleRSS    int64         // VmRSS shortly after serving
	peakRSS    int64         // largest VmHWM seen; kept if the process dies
	restartCnt int

	done    chan struct{}
	exitErr error
}

// idleSettle is how long we let a freshly started broker settle before
// sampling its idle RSS: start-up allocations are done by then, and the
// figure is a measurement, not a synchronisation point.
const idleSettle = time.Second

// startServer execs spec with a fresh data directory under root, waits
// for the readiness line, then for a successful Metadata round trip.
func startServer(ctx context.Context, spec serverSpec, root string, timeout time.Duration) (*server, error) {
	dataDir, err := os.MkdirTemp(root, spec.label+"-data-*")
	if err != nil {
		return nil, fmt.Errorf("make data dir for %s: %w", spec.label, err)
	}
	logPath := dataDir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", spec.label, err)
	}

	cmd := exec.Command(spec.bin, spec.args(dataDir)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("stdout pipe for %s: %w", spec.label, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("stderr pipe for %s: %w", spec.label, err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", spec.label, spec.bin, err)
	}
	s := &server{
		spec:    spec,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		dataDir: dataDir,
		logPath: logPath,
		done:    make(chan struct{}),
	}

	addrCh := make(chan string, 2)
	var logMu sync.Mutex
	var copiers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			scanLog(r, logf, &logMu, addrCh)
		}()
	}
	go func() {
		// Wait must follow the pipe readers draining, or it closes
		// the pipes under them.
		copiers.Wait()
		s.exitErr = cmd.Wait()
		logf.Close()
		close(s.done)
	}()

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case s.addr = <-addrCh:
		s.lineReady = time.Since(start)
	case <-s.done:
		return nil, fmt.Errorf("%w: %s before serving (%v); log %s:\n%s", errExited, spec.label, s.exitErr, logPath, logTail(logPath, 20))
	case <-deadline.C:
		s.stop()
		return nil, fmt.Errorf("%s not ready within %v; log %s:\n%s", spec.label, timeout, logPath, logTail(logPath, 20))
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}

	if err := waitServing(ctx, s, start.Add(timeout)); err != nil {
		s.stop()
		return nil, err
	}
	s.serving = time.Since(start)

	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	m, err := readMem(s.pid)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("idle RSS of %s: %w", spec.label, err)
	}
	s.idleRSS, s.peakRSS = m.rss, m.peak
	return s, nil
}

// waitServing polls the broker with Metadata requests until one succeeds,
// the process dies, or the deadline passes.
func waitServing(ctx context.Context, s *server, deadline time.Time) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr))
	if err != nil {
		return fmt.Errorf("client for %s: %w", s.spec.label, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var lastErr error
	for time.Now().Before(deadline) {
		if !s.alive() {
			return fmt.Errorf("%w: %s: %v", errExited, s.spec.label, s.exitErr)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, lastErr = adm.BrokerMetadata(rctx)
		cancel()
		if lastErr == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by deadline
	}
	return fmt.Errorf("%s printed its address but Metadata kept failing: %w", s.spec.label, lastErr)
}

// scanLog copies r line by line into w and sends the addr= of the first
// readiness line to addrCh. Lines from stdout and stderr interleave whole.
func scanLog(r io.Reader, w io.Writer, mu *sync.Mutex, addrCh chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		mu.Lock()
		fmt.Fprintln(w, line)
		mu.Unlock()
		if sent {
			continue
		}
		if addr, err := readyAddr(line); err == nil {
			addrCh <- addr
			sent = true
		}
	}
	// A line longer than the buffer stops the scanner; keep draining so
	// the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// readyAddr returns the addr= value of a slog text line announcing that the
// Kafka listener is serving. It returns errNoAddr for any other line.
func readyAddr(line string) (string, error) {
	if !strings.Contains(line, readyMsg) {
		return "", errNoAddr
	}
	for rest := line; rest != ""; {
		i := strings.Index(rest, "addr=")
		if i < 0 {
			break
		}
		// Require a key boundary so e.g. "peer_addr=" is not taken.
		if i > 0 && rest[i-1] != ' ' {
			rest = rest[i+len("addr="):]
			continue
		}
		v := rest[i+len("addr="):]
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return "", errNoAddr
			}
			v = v[1 : 1+end]
		} else if end := strings.IndexByte(v, ' '); end >= 0 {
			v = v[:end]
		}
		if v == "" || !strings.Contains(v, ":") {
			return "", errNoAddr
		}
		return v, nil
	}
	return "", errNoAddr
}

// alive reports whether the process is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// samplePeak folds the process's current VmHWM into peakRSS. A dead
// process leaves the last sample in place.
func (s *server) samplePeak() {
	if m, err := readMem(s.pid); err == nil && m.peak > s.peakRSS {
		s.peakRSS = m.peak
	}
}

// stop sends SIGTERM, waits up to ten seconds for a clean exit, then
// kills the process. It is safe to call on an exited server.
func (s *server) stop() {
	if !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(10 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// logTail returns the last n lines of the file at path, for error reports.
func logTail(path string, n int) string {
	raw, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

package compat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// memberProcEnv carries a subprocess member's configuration. When it is set,
// the test binary runs TestGroupMemberProcess as a group member that can be
// killed with SIGKILL: kgo has no way to vanish without sending LeaveGroup,
// but a killed process does.
const memberProcEnv = "KBROKER_COMPAT_GROUP_MEMBER"

// memberProcEventPrefix marks the subprocess's event lines on its stdout.
const memberProcEventPrefix = "GROUPEVENT "

type memberProcConfig struct {
	Addr     string `json:"addr"`
	Group    string `json:"group"`
	Topic    string `json:"topic"`
	Name     string `json:"name"`
	Balancer string `json:"balancer"`
}

// memberProcEvent is one line the subprocess reports.
type memberProcEvent struct {
	Kind   string  `json:"k"` // assigned, revoked, lost, rec, problem
	ID     string  `json:"id,omitempty"`
	Gen    int32   `json:"gen,omitempty"`
	At     int64   `json:"at,omitempty"`
	Parts  []int32 `json:"p,omitempty"`
	Part   int32   `json:"part,omitempty"`
	Offset int64   `json:"o,omitempty"`
	Value  string  `json:"v,omitempty"`
	Msg    string  `json:"msg,omitempty"`
}

func balancerByName(name string) (kgo.GroupBalancer, error) {
	switch name {
	case "cooperative-sticky":
		return kgo.CooperativeStickyBalancer(), nil
	case "range":
		return kgo.RangeBalancer(), nil
	case "roundrobin":
		return kgo.RoundRobinBalancer(), nil
	case "sticky":
		return kgo.StickyBalancer(), nil
	}
	return nil, fmt.Errorf("unknown balancer %q", name)
}

// TestGroupMemberProcess is not a test on its own: it is the body of a group
// member subprocess started by startMemberProcess, and skips otherwise.
func TestGroupMemberProcess(t *testing.T) {
	raw := os.Getenv(memberProcEnv)
	if raw == "" {
		t.Skip("only runs as a subprocess group member")
	}
	var cfg memberProcConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("parse %s: %v", memberProcEnv, err)
	}
	bal, err := balancerByName(cfg.Balancer)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	emit := func(ev memberProcEvent) {
		line, _ := json.Marshal(ev)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s%s\n", memberProcEventPrefix, line)
	}
	opts := append(memberOpts(cfg.Group, cfg.Topic, 2*time.Second),
		kgo.SeedBrokers(cfg.Addr),
		kgo.ClientID("compat-"+cfg.Name),
		kgo.Balancers(bal),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, a map[string][]int32) {
			id, gen := cl.GroupMetadata()
			emit(memberProcEvent{Kind: "assigned", ID: id, Gen: gen, At: time.Now().UnixNano(), Parts: a[cfg.Topic]})
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				emit(memberProcEvent{Kind: "problem", Msg: fmt.Sprintf("commit before revoking: %v", err)})
			}
			emit(memberProcEvent{Kind: "revoked", At: time.Now().UnixNano(), Parts: r[cfg.Topic]})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			emit(memberProcEvent{Kind: "lost", At: time.Now().UnixNano(), Parts: l[cfg.Topic]})
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	// Never closed: the parent kills this process.
	for {
		fs := cl.PollFetches(context.Background())
		fs.EachError(func(topic string, p int32, err error) {
			emit(memberProcEvent{Kind: "problem", Msg: fmt.Sprintf("poll error %s/%d: %v", topic, p, err)})
		})
		fs.EachRecord(func(r *kgo.Record) {
			emit(memberProcEvent{Kind: "rec", Part: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		})
	}
}

// memberProc is a group member running in a subprocess; its events feed the
// tracker from a reader goroutine.
type memberProc struct {
	name   string
	cmd    *exec.Cmd
	read   chan struct{} // closed when stdout hits EOF
	exited chan struct{}
	stderr *syncBuffer
}

// startMemberProcess runs this test binary as a group member (see
// TestGroupMemberProcess).
func startMemberProcess(t *testing.T, b *Broker, tr *tracker, name, group, balancer string) *memberProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	cfg, _ := json.Marshal(memberProcConfig{Addr: b.Addr(), Group: group, Topic: tr.topic, Name: name, Balancer: balancer})
	cmd := exec.Command(exe, "-test.run=^TestGroupMemberProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), memberProcEnv+"="+string(cfg))
	setDeathSignal(cmd)
	mp := &memberProc{name: name, cmd: cmd, read: make(chan struct{}), exited: make(chan struct{}), stderr: new(syncBuffer)}
	cmd.Stderr = mp.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start member process: %v", err)
	}
	go mp.consume(out, tr)
	go func() {
		<-mp.read
		_ = cmd.Wait()
		close(mp.exited)
	}()
	t.Cleanup(func() {
		mp.kill(tr)
		if t.Failed() {
			t.Logf("member process %s stderr:\n%s", name, mp.stderr.String())
		}
	})
	return mp
}

func (mp *memberProc) consume(out io.Reader, tr *tracker) {
	defer close(mp.read)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), memberProcEventPrefix)
		if !ok {
			continue
		}
		var ev memberProcEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			tr.problem("%s: bad event line %q: %v", mp.name, line, err)
			continue
		}
		switch ev.Kind {
		case "assigned":
			tr.assigned(mp.name, ev.ID, ev.Gen, ev.At, ev.Parts)
		case "revoked":
			tr.released(mp.name, "revoked", ev.At, ev.Parts)
		case "lost":
			tr.released(mp.name, "lost", ev.At, ev.Parts)
			tr.problem("%s lost partitions %v while live", mp.name, ev.Parts)
		case "rec":
			tr.record(mp.name, ev.Part, ev.Offset, ev.Value)
		case "problem":
			tr.problem("%s: %s", mp.name, ev.Msg)
		}
	}
}

// kill sends SIGKILL, waits for the process and its last reports, and ends
// its ownership of everything: it leaves the group without LeaveGroup, so
// only the broker's session timeout can remove it. Safe to call twice.
func (mp *memberProc) kill(tr *tracker) {
	select {
	case <-mp.exited:
		return
	default:
	}
	_ = mp.cmd.Process.Signal(syscall.SIGKILL)
	<-mp.exited
	tr.released(mp.name, "killed", time.Now().UnixNano(), nil)
}

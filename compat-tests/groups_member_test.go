package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// memberRole runs TestGroupMemberProcess as a group member that can be
// killed with SIGKILL: kgo has no way to vanish without sending LeaveGroup,
// but a killed process does.
var memberRole = subprocessRole{
	what:        "group member",
	test:        "TestGroupMemberProcess",
	env:         "KBROKER_COMPAT_GROUP_MEMBER",
	prefix:      "GROUPEVENT ",
	stderrShown: stderrTail,
}

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
	var cfg memberProcConfig
	memberRole.config(t, &cfg)
	bal, err := balancerByName(cfg.Balancer)
	if err != nil {
		t.Fatal(err)
	}
	emit := eventEmitter[memberProcEvent](memberRole)
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
	*subprocess
}

// startMemberProcess runs this test binary as a group member (see
// TestGroupMemberProcess).
func startMemberProcess(t *testing.T, b *Broker, tr *tracker, name, group, balancer string) *memberProc {
	t.Helper()
	cfg := memberProcConfig{Addr: b.Addr(), Group: group, Topic: tr.topic, Name: name, Balancer: balancer}
	mp := &memberProc{startSubprocess(t, memberRole, name, cfg, func(line string) { trackMemberEvent(tr, name, line) })}
	// Registered after startSubprocess's cleanup, so it runs first: a
	// member still alive at the end is killed through the tracker too.
	t.Cleanup(func() { mp.kill(tr) })
	return mp
}

// trackMemberEvent feeds one event line of member name to the tracker.
func trackMemberEvent(tr *tracker, name, line string) {
	var ev memberProcEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		tr.problem("%s: bad event line %q: %v", name, line, err)
		return
	}
	switch ev.Kind {
	case "assigned":
		tr.assigned(name, ev.ID, ev.Gen, ev.At, ev.Parts)
	case "revoked":
		tr.released(name, "revoked", ev.At, ev.Parts)
	case "lost":
		tr.released(name, "lost", ev.At, ev.Parts)
		tr.problem("%s lost partitions %v while live", name, ev.Parts)
	case "rec":
		tr.record(name, ev.Part, ev.Offset, ev.Value)
	case "problem":
		tr.problem("%s: %s", name, ev.Msg)
	}
}

// kill sends SIGKILL, waits for the process and its last reports, and ends
// its ownership of everything: it leaves the group without LeaveGroup, so
// only the broker's session timeout can remove it. Safe to call twice.
func (mp *memberProc) kill(tr *tracker) {
	if mp.subprocess.kill() {
		tr.released(mp.name, "killed", time.Now().UnixNano(), nil)
	}
}

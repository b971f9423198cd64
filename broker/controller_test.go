package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// ctlCluster is one embedded etcd with fake brokers registered directly in
// it (no Kafka listeners, no logs) and a controller-side Broker that has
// only what the controller logic needs: config, logger, store and view.
type ctlCluster struct {
	t     *testing.T
	store *etcd.Store
	view  *etcd.MetadataView
	regs  map[int32]*etcd.Registration
	cfg   *config.Config
}

func newCtlCluster(t *testing.T, mutate ...func(*config.Config)) *ctlCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	emb, err := etcd.StartEmbedded(ctx, etcd.EmbedConfig{
		Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", Logger: quiet,
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { emb.Close() })
	cli, err := etcd.Dial(emb.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	store, err := etcd.OpenStore(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	t.Cleanup(vcancel)
	view, err := store.Watch(vctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.NewConfig()
	for _, m := range mutate {
		m(cfg)
	}
	return &ctlCluster{t: t, store: store, view: view, regs: map[int32]*etcd.Registration{}, cfg: cfg}
}

func (c *ctlCluster) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.t.Cleanup(cancel)
	return ctx
}

// broker returns a controller-side Broker for node id, registering it.
func (c *ctlCluster) broker(id int32) *Broker {
	c.t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{c.t}, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	b := &Broker{cfg: c.cfg, logger: logger.With("node", id), nodeID: id, store: c.store, view: c.view, ctx: ctx, cancel: cancel}
	b.regPtr.Store(c.register(id))
	return b
}

// register adds a fake broker; it lives until kill.
func (c *ctlCluster) register(id int32) *etcd.Registration {
	c.t.Helper()
	info := etcd.BrokerInfo{ID: id, Endpoints: []etcd.Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 9000 + id, SecurityProtocol: "PLAINTEXT"}}}
	reg, err := c.store.RegisterBroker(c.ctx(), info, 2*time.Second)
	if err != nil {
		c.t.Fatalf("register broker %d: %v", id, err)
	}
	c.regs[id] = reg
	if err := c.view.WaitForRevision(c.ctx(), reg.Epoch()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { reg.Close(context.Background()) })
	return reg
}

// kill revokes a broker's lease: what its expiry does, without the wait.
func (c *ctlCluster) kill(id int32) {
	c.t.Helper()
	if err := c.regs[id].Close(c.ctx()); err != nil {
		c.t.Fatalf("kill broker %d: %v", id, err)
	}
}

// campaign makes b the controller and runs its loop until the test ends
// (or it is deposed). The returned channel is closed when the loop returns.
func (c *ctlCluster) campaign(b *Broker) (*etcd.Controller, <-chan struct{}) {
	c.t.Helper()
	ctl, err := c.store.Campaign(c.ctx(), b.nodeID, b.registration().Session())
	if err != nil {
		c.t.Fatal(err)
	}
	b.controller.Store(ctl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.runController(ctx, ctl) }()
	c.t.Cleanup(func() { cancel(); <-done })
	return ctl, done
}

// createTopic writes a topic with the given assignment and states.
func (c *ctlCluster) createTopic(ctl *etcd.Controller, name string, configs map[string]string, replicas [][]int32, states []etcd.PartitionState) {
	c.t.Helper()
	rev, err := ctl.CreateTopic(c.ctx(), etcd.TopicSpec{Name: name, ID: etcd.NewUUID(), Replicas: replicas, Configs: configs}, states)
	if err != nil {
		c.t.Fatalf("create topic %s: %v", name, err)
	}
	if err := c.view.WaitForRevision(c.ctx(), rev); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ctlCluster) state(topic string, p int32) etcd.PartitionState {
	t := c.view.Image().Topics[topic]
	if t == nil || int(p) >= len(t.Partitions) {
		return etcd.PartitionState{Leader: -2}
	}
	return t.Partitions[p].State
}

// waitState polls until topic-p is exactly want.
func (c *ctlCluster) waitState(topic string, p int32, want etcd.PartitionState) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.state(topic, p)
		if stateEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s-%d: state %+v, want %+v", topic, p, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateEqual(a, b etcd.PartitionState) bool {
	return a.Leader == b.Leader && a.LeaderEpoch == b.LeaderEpoch && a.PartitionEpoch == b.PartitionEpoch && slices.Equal(a.ISR, b.ISR)
}

func ps(leader, leaderEpoch, partitionEpoch int32, isr ...int32) etcd.PartitionState {
	return etcd.PartitionState{Leader: leader, LeaderEpoch: leaderEpoch, ISR: isr, PartitionEpoch: partitionEpoch}
}

func TestControllerBrokerFailover(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t)
	b := c.broker(100)
	for _, id := range []int32{1, 2, 3} {
		c.register(id)
	}
	ctl, _ := c.campaign(b)
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}},
		[]etcd.PartitionState{ps(1, 0, 0, 1, 2, 3), ps(2, 0, 0, 2, 3, 1), ps(3, 0, 0, 3, 1, 2)})

	// Broker 1 fails: it loses p0 to the next live ISR replica in
	// assignment order and leaves every ISR; leaders elsewhere stay.
	c.kill(1)
	c.waitState("t", 0, ps(2, 1, 1, 2, 3))
	c.waitState("t", 1, ps(2, 0, 1, 2, 3))
	c.waitState("t", 2, ps(3, 0, 1, 3, 2))

	c.kill(2)
	c.waitState("t", 0, ps(3, 2, 2, 3))
	c.waitState("t", 1, ps(3, 1, 2, 3))
	c.waitState("t", 2, ps(3, 0, 2, 3))

	// The last ISR member fails: offline, ISR kept.
	c.kill(3)
	c.waitState("t", 0, ps(-1, 3, 3, 3))
	c.waitState("t", 1, ps(-1, 2, 3, 3))
	c.waitState("t", 2, ps(-1, 1, 3, 3))

	// A returning replica that was out of sync may not lead (unclean
	// election is off); the last ISR member returning leads again.
	c.register(1)
	c.register(2)
	for p := int32(0); p < 3; p++ {
		if st := c.state("t", p); st.Leader != -1 {
			t.Fatalf("t-%d elected out-of-sync leader: %+v", p, st)
		}
	}
	c.register(3)
	// Exact epochs: no election happened in between.
	c.waitState("t", 0, ps(3, 4, 4, 3))
	c.waitState("t", 1, ps(3, 3, 4, 3))
	c.waitState("t", 2, ps(3, 2, 4, 3))
}

func TestControllerUncleanElection(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t)
	b := c.broker(100)
	c.register(1)
	c.register(2)
	ctl, _ := c.campaign(b)
	// Broker 2 is a replica but out of sync everywhere.
	c.createTopic(ctl, "unclean", map[string]string{"unclean.leader.election.enable": "true"},
		[][]int32{{1, 2}}, []etcd.PartitionState{ps(1, 0, 0, 1)})
	c.createTopic(ctl, "clean", nil, [][]int32{{1, 2}}, []etcd.PartitionState{ps(1, 0, 0, 1)})

	c.kill(1)
	c.waitState("unclean", 0, ps(2, 1, 1, 2))
	c.waitState("clean", 0, ps(-1, 1, 1, 1))

	// ElectLeaders UNCLEAN overrides the topic's setting.
	resp := electLeadersReq(t, b, electionUnclean, map[string][]int32{"clean": {0}, "unclean": {0}})
	if got := electionCodes(resp); got["clean-0"] != 0 || got["unclean-0"] != kerr.ElectionNotNeeded.Code {
		t.Fatalf("unclean ElectLeaders codes %v", got)
	}
	c.waitState("clean", 0, ps(2, 2, 2, 2))

	// No live replica at all: ELIGIBLE_LEADERS_NOT_AVAILABLE.
	c.kill(2)
	c.waitState("clean", 0, ps(-1, 3, 3, 2))
	resp = electLeadersReq(t, b, electionUnclean, map[string][]int32{"clean": {0}})
	if got := electionCodes(resp); got["clean-0"] != kerr.EligibleLeadersNotAvailable.Code {
		t.Fatalf("unclean ElectLeaders with no live replica: %v", got)
	}
}

func TestControlledShutdown(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t)
	b := c.broker(100)
	stopping := c.broker(1)
	c.register(2)
	c.register(3)
	ctl, _ := c.campaign(b)
	c.createTopic(ctl, "rf3", nil, [][]int32{{1, 2, 3}, {2, 1, 3}, {3, 2, 1}},
		[]etcd.PartitionState{ps(1, 0, 0, 1, 2, 3), ps(2, 0, 0, 2, 1, 3), ps(3, 0, 0, 3, 2)})
	c.createTopic(ctl, "rf1", nil, [][]int32{{1}}, []etcd.PartitionState{ps(1, 0, 0, 1)})
	// Broker 1 is the only in-sync replica here: it must keep leading, even
	// with unclean election enabled.
	c.createTopic(ctl, "alone", map[string]string{"unclean.leader.election.enable": "true"},
		[][]int32{{1, 2}}, []etcd.PartitionState{ps(1, 0, 0, 1)})

	start := time.Now()
	if err := stopping.controlledShutdown(c.ctx()); err != nil {
		t.Fatalf("controlled shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("controlled shutdown took %v", d)
	}
	// Already settled when controlledShutdown returns: no polling.
	for _, w := range []struct {
		topic string
		p     int32
		want  etcd.PartitionState
	}{
		{"rf3", 0, ps(2, 1, 1, 2, 3)},
		{"rf3", 1, ps(2, 0, 1, 2, 3)},
		{"rf3", 2, ps(3, 0, 0, 3, 2)},
		{"rf1", 0, ps(1, 0, 0, 1)},
		{"alone", 0, ps(1, 0, 0, 1)},
	} {
		if got := c.state(w.topic, w.p); !stateEqual(got, w.want) {
			t.Errorf("%s-%d after controlled shutdown: %+v, want %+v", w.topic, w.p, got, w.want)
		}
	}
	// A broker in controlled shutdown is not elected anywhere.
	c.kill(2)
	c.waitState("rf3", 0, ps(3, 2, 2, 3))
	c.waitState("rf3", 1, ps(3, 1, 2, 3))
	// Once it is gone for good, its partitions go offline.
	c.kill(1)
	c.waitState("rf1", 0, ps(-1, 1, 1, 1))
}

func TestControlledShutdownTimesOut(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t)
	b := c.broker(100)
	stopping := c.broker(1)
	c.register(2)
	ctl, err := c.store.Campaign(c.ctx(), b.nodeID, b.registration().Session())
	if err != nil {
		t.Fatal(err)
	}
	// No controller loop runs: nothing moves, and the wait is bounded.
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2}}, []etcd.PartitionState{ps(1, 0, 0, 1, 2)})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = stopping.controlledShutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("controlled shutdown with no controller: %v", err)
	}
}

func TestAutoLeaderRebalance(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t, func(cfg *config.Config) { cfg.LeaderImbalanceCheckIntervalSeconds = 1 })
	b := c.broker(100)
	c.register(1)
	c.register(2)
	ctl, _ := c.campaign(b)
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2}, {1, 2}, {2, 1}},
		[]etcd.PartitionState{ps(2, 3, 5, 2, 1), ps(2, 0, 0, 2), ps(2, 0, 0, 2, 1)})
	// p0: preferred replica 1 is in sync and moves back; p1: 1 is not in
	// the ISR and stays a follower; p2 is already on its preferred replica.
	c.waitState("t", 0, ps(1, 4, 6, 2, 1))
	if st := c.state("t", 1); !stateEqual(st, ps(2, 0, 0, 2)) {
		t.Fatalf("t-1 moved although its preferred replica is out of sync: %+v", st)
	}
}

func TestPlanRebalanceThreshold(t *testing.T) {
	t.Parallel()
	img := &etcd.Image{Brokers: map[int32]etcd.BrokerInfo{1: {ID: 1}, 2: {ID: 2}}, Topics: map[string]*etcd.Topic{}}
	topic := &etcd.Topic{Name: "t"}
	for i := range 20 {
		st := ps(1, 0, 0, 1, 2)
		if i < 2 {
			st = ps(2, 0, 0, 1, 2)
		}
		topic.Partitions = append(topic.Partitions, etcd.Partition{ID: int32(i), Replicas: []int32{1, 2}, State: st, ModRevision: 10})
	}
	img.Topics["t"] = topic
	// 2 of 20 misplaced is 10%: not above leader.imbalance.per.broker.percentage.
	if got := planRebalance(img, 10); len(got) != 0 {
		t.Fatalf("10%% imbalance rebalanced %d partitions", len(got))
	}
	topic.Partitions[2].State = ps(2, 0, 0, 2, 1)
	got := planRebalance(img, 10)
	if len(got) != 3 {
		t.Fatalf("15%% imbalance: %d changes, want 3", len(got))
	}
	for _, ch := range got {
		if ch.next.Leader != 1 || ch.next.LeaderEpoch != 1 || ch.next.PartitionEpoch != 1 || ch.modRev != 10 {
			t.Fatalf("rebalance change %+v", ch)
		}
	}
	// A preferred replica shutting down is not elected.
	img.Brokers[1] = etcd.BrokerInfo{ID: 1, ShuttingDown: true}
	if got := planRebalance(img, 10); len(got) != 0 {
		t.Fatalf("rebalanced onto a shutting-down broker: %+v", got)
	}
}

func TestElectLeadersPreferred(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t, func(cfg *config.Config) { cfg.AutoLeaderRebalanceEnable = false })
	b := c.broker(100)
	c.register(1)
	c.register(2)
	ctl, _ := c.campaign(b)
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2}, {1, 2}, {2, 1}, {3, 1}},
		[]etcd.PartitionState{ps(2, 0, 0, 2, 1), ps(2, 0, 0, 2), ps(2, 0, 0, 2, 1), ps(1, 0, 0, 1)})

	resp := electLeadersReq(t, b, electionPreferred, map[string][]int32{"t": {0, 1, 2, 3, 9}, "nope": {0}})
	want := map[string]int16{
		"t-0":    0,
		"t-1":    kerr.PreferredLeaderNotAvailable.Code, // not in the ISR
		"t-2":    kerr.ElectionNotNeeded.Code,
		"t-3":    kerr.PreferredLeaderNotAvailable.Code, // broker 3 is not alive
		"t-9":    kerr.UnknownTopicOrPartition.Code,
		"nope-0": kerr.UnknownTopicOrPartition.Code,
	}
	if got := electionCodes(resp); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ElectLeaders codes %v, want %v", got, want)
	}
	// The answer comes once the change is in the image.
	if st := c.state("t", 0); !stateEqual(st, ps(1, 1, 1, 2, 1)) {
		t.Fatalf("t-0 after preferred election: %+v", st)
	}

	// A null topic list elects everywhere and leaves out ELECTION_NOT_NEEDED.
	resp = electLeadersReq(t, b, electionPreferred, nil)
	got := electionCodes(resp)
	if _, ok := got["t-0"]; ok || len(got) != 2 || got["t-1"] != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("ElectLeaders for all partitions: %v", got)
	}

	// v0 has no election type (always preferred) and works the same.
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version = 0
	req.ElectionType = electionUnclean // not on the wire at v0
	rt := kmsg.NewElectLeadersRequestTopic()
	rt.Topic, rt.Partitions = "t", []int32{2}
	req.Topics = append(req.Topics, rt)
	if got := electionCodes(handleElectLeadersT(t, b, req)); got["t-2"] != kerr.ElectionNotNeeded.Code {
		t.Fatalf("ElectLeaders v0: %v", got)
	}

	// Unknown election type.
	req = kmsg.NewPtrElectLeadersRequest()
	req.Version, req.ElectionType, req.Topics = 2, 7, []kmsg.ElectLeadersRequestTopic{rt}
	resp = handleElectLeadersT(t, b, req)
	if resp.ErrorCode != kerr.InvalidRequest.Code || electionCodes(resp)["t-2"] != kerr.InvalidRequest.Code {
		t.Fatalf("unknown election type: %+v", resp)
	}

	// A broker that is not the controller and cannot forward to it (this
	// harness builds brokers without inter-broker clients) refuses every
	// partition; forwarding is TestAdminForwardedToController's.
	other := c.broker(101)
	req = kmsg.NewPtrElectLeadersRequest()
	req.Version, req.Topics = 2, []kmsg.ElectLeadersRequestTopic{rt}
	if got := electionCodes(handleElectLeadersT(t, other, req)); got["t-2"] != kerr.NotController.Code {
		t.Fatalf("ElectLeaders on a non-controller: %v", got)
	}
}

func TestDeposedControllerCannotWrite(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t, func(cfg *config.Config) { cfg.AutoLeaderRebalanceEnable = false })
	old := c.broker(100)
	next := c.broker(101)
	c.register(1)
	c.register(2)
	ctl, done := c.campaign(old)
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2}}, []etcd.PartitionState{ps(2, 0, 0, 2, 1)})

	// The old controller's lease ends (as when it is paused past its
	// session timeout): its loop stops and its writes are refused.
	c.kill(100)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deposed controller loop still running")
	}
	modRev := c.view.Image().Topics["t"].Partitions[0].ModRevision
	if _, err := ctl.UpdatePartition(c.ctx(), "t", 0, modRev, ps(1, 1, 1, 1, 2)); !errors.Is(err, etcd.ErrNotController) {
		t.Fatalf("deposed controller write: %v", err)
	}
	if _, res := old.electLeader(c.ctx(), ctl, electionPreferred, electionTarget{"t", 0}); res.err != kerr.NotController {
		t.Fatalf("deposed controller election: %+v", res)
	}
	if st := c.state("t", 0); !stateEqual(st, ps(2, 0, 0, 2, 1)) {
		t.Fatalf("state changed by a deposed controller: %+v", st)
	}

	// The next controller fails broker 1 over.
	c.campaign(next)
	c.kill(1)
	c.waitState("t", 0, ps(2, 0, 1, 2))
}

// electLeadersReq sends an ElectLeaders v2 request to b's handler.
func electLeadersReq(t *testing.T, b *Broker, electionType int8, topics map[string][]int32) *kmsg.ElectLeadersResponse {
	t.Helper()
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version, req.ElectionType, req.TimeoutMillis = 2, electionType, 5000
	if topics != nil {
		req.Topics = []kmsg.ElectLeadersRequestTopic{}
		for name, parts := range topics {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic, rt.Partitions = name, parts
			req.Topics = append(req.Topics, rt)
		}
	}
	return handleElectLeadersT(t, b, req)
}

func handleElectLeadersT(t *testing.T, b *Broker, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	t.Helper()
	rep, err := handleElectLeaders(&conn{b: b}, requestInfo{key: req.Key(), version: req.Version}, req)
	if err != nil {
		t.Fatalf("ElectLeaders: %v", err)
	}
	return rep.resp.(*kmsg.ElectLeadersResponse)
}

// electionCodes flattens a response to "topic-partition" → error code.
func electionCodes(resp *kmsg.ElectLeadersResponse) map[string]int16 {
	out := map[string]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)] = rp.ErrorCode
		}
	}
	return out
}

func TestControllerLosesRaceToLeaderISRChange(t *testing.T) {
	t.Parallel()
	c := newCtlCluster(t, func(cfg *config.Config) { cfg.AutoLeaderRebalanceEnable = false })
	b := c.broker(100)
	for _, id := range []int32{1, 2, 3} {
		c.register(id)
	}
	ctl, err := c.store.Campaign(c.ctx(), b.nodeID, b.registration().Session())
	if err != nil {
		t.Fatal(err)
	}
	c.createTopic(ctl, "t", nil, [][]int32{{1, 2, 3}}, []etcd.PartitionState{ps(1, 0, 0, 1, 2, 3)})
	c.kill(3)
	waitImage(t, c, func(img *etcd.Image) bool { _, ok := img.Brokers[3]; return !ok })
	changes := b.planFailovers(c.view.Image())
	if len(changes) != 1 || !slices.Equal(changes[0].next.ISR, []int32{1, 2}) {
		t.Fatalf("planned %+v", changes)
	}
	// The leader shrinks the ISR first (follower 2 lagging)...
	p := c.view.Image().Topics["t"].Partitions[0]
	rev, err := c.store.CompareAndSetPartition(c.ctx(), "t", 0, p.ModRevision, ps(1, 0, 1, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	// ...so the controller's decision, made on the older image, is refused
	// rather than writing back a stale ISR.
	if _, failed := b.applyChanges(c.ctx(), b.logger, ctl, changes); !failed {
		t.Fatal("stale controller write was not refused")
	}
	if err := c.view.WaitForRevision(c.ctx(), rev); err != nil {
		t.Fatal(err)
	}
	if st := c.state("t", 0); !stateEqual(st, ps(1, 0, 1, 1, 3)) {
		t.Fatalf("leader's ISR change lost: %+v", st)
	}
	// The loop decides again on the new state.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.runController(ctx, ctl) }()
	t.Cleanup(func() { cancel(); <-done })
	c.waitState("t", 0, ps(1, 0, 2, 1))
}

func waitImage(t *testing.T, c *ctlCluster, cond func(*etcd.Image) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(c.view.Image()) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the metadata image")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBouncedBrokerIsFailedOver(t *testing.T) {
	t.Parallel()
	b := &Broker{cfg: config.NewConfig(), logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	brokers := map[int32]etcd.BrokerInfo{1: {ID: 1, Epoch: 10}, 2: {ID: 2, Epoch: 11}, 3: {ID: 3, Epoch: 12}}
	topic := &etcd.Topic{Name: "t", Partitions: []etcd.Partition{
		{ID: 0, Replicas: []int32{1, 2, 3}, State: ps(1, 0, 0, 1, 2, 3), ModRevision: 20},
		{ID: 1, Replicas: []int32{1}, State: ps(1, 0, 0, 1), ModRevision: 20},
	}}
	before := &etcd.Image{Brokers: brokers, Topics: map[string]*etcd.Topic{"t": topic}}
	epochs := brokerEpochs(before)
	if got := b.planFailovers(withoutBrokers(before, bouncedBrokers(epochs, before))); len(got) != 0 {
		t.Fatalf("changes with nothing bounced: %+v", got)
	}
	// Broker 1 restarted between two images: same id, new epoch.
	after := &etcd.Image{Brokers: maps.Clone(brokers), Topics: before.Topics}
	after.Brokers[1] = etcd.BrokerInfo{ID: 1, Epoch: 30}
	bounced := bouncedBrokers(epochs, after)
	if !slices.Equal(bounced, []int32{1}) {
		t.Fatalf("bounced = %v", bounced)
	}
	got := b.planFailovers(withoutBrokers(after, bounced))
	if len(got) != 2 || !stateEqual(got[0].next, ps(2, 1, 1, 2, 3)) || !stateEqual(got[1].next, ps(-1, 1, 1, 1)) {
		t.Fatalf("bounce changes: %+v", got)
	}
	// The original image is untouched (images are shared, read-only).
	if _, ok := after.Brokers[1]; !ok {
		t.Fatal("withoutBrokers modified the image")
	}
}

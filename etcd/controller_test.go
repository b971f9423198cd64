package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func sessionT(t *testing.T, cli *clientv3.Client) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func campaignT(t *testing.T, s *Store, id int32) *Controller {
	t.Helper()
	c, err := s.Campaign(testCtx(t), id, sessionT(t, s.cli))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestElectionFailover(t *testing.T) {
	t.Parallel()
	e, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)

	sess1 := sessionT(t, s.cli)
	c1, err := s.Campaign(ctx, 1, sess1)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "controller 1 in the image", func() bool {
		img := v.Image()
		return img.ControllerID == 1 && img.ControllerEpoch == c1.Epoch
	})

	// Broker 2 campaigns from another connection and must wait.
	s2 := openStoreT(t, dialT(t, e))
	won := make(chan *Controller, 1)
	go func() {
		c, err := s2.Campaign(ctx, 2, sessionT(t, s2.cli))
		if err != nil {
			t.Error(err)
			close(won)
			return
		}
		won <- c
	}()
	waitFor(t, "candidate 2 queued", func() bool {
		get, err := s.cli.Get(ctx, s.controllerPrefix()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && get.Count == 2
	})
	select {
	case <-won:
		t.Fatal("second candidate elected while the first is alive")
	default:
	}
	if v.Image().ControllerID != 1 {
		t.Fatalf("controller = %d while 1 is alive", v.Image().ControllerID)
	}

	// The first controller's session ends: the second takes over.
	sess1.Orphan()
	if _, err := s.cli.Revoke(ctx, sess1.Lease()); err != nil {
		t.Fatal(err)
	}
	var c2 *Controller
	select {
	case c2 = <-won:
	case <-time.After(15 * time.Second):
		t.Fatal("second candidate never elected")
	}
	if c2 == nil {
		t.FailNow()
	}
	waitClosed(t, "deposed controller's Done", c1.Done())
	if c2.Epoch <= c1.Epoch {
		t.Fatalf("epoch went from %d to %d", c1.Epoch, c2.Epoch)
	}
	waitFor(t, "controller 2 in the image", func() bool {
		img := v.Image()
		return img.ControllerID == 2 && img.ControllerEpoch == c2.Epoch
	})

	// The deposed controller is fenced; the new one writes.
	tspec, states := spec("fenced", 1)
	if _, err := c1.CreateTopic(ctx, tspec, states); !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed CreateTopic: %v, want ErrNotController", err)
	}
	if _, err := c2.CreateTopic(ctx, tspec, states); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.DeleteTopic(ctx, "fenced"); !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed DeleteTopic: %v", err)
	}
	if _, err := c1.UpdatePartition(ctx, "fenced", 0, 0, states[0]); !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed UpdatePartition: %v", err)
	}
	if _, err := c1.AddPartitions(ctx, "fenced", [][]int32{{0}}, states[:1]); !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed AddPartitions: %v", err)
	}

	// Resign hands over at once, and fences the resigner too.
	if err := c2.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "resigned controller's Done", c2.Done())
	waitFor(t, "no controller", func() bool { return v.Image().ControllerID == -1 })
	if _, err := c2.DeleteTopic(ctx, "fenced"); !errors.Is(err, ErrNotController) {
		t.Fatalf("resigned DeleteTopic: %v", err)
	}
}

func TestCampaignCancelled(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	campaignT(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Campaign(ctx, 2, sessionT(t, s.cli)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign = %v, want deadline exceeded", err)
	}
	// The withdrawn candidate left no key behind.
	get, err := s.cli.Get(testCtx(t), s.controllerPrefix()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != 1 {
		t.Fatalf("candidates after cancel: %v, %v", get, err)
	}
}

// TestCreateTopicManyPartitions creates a topic with more partitions than
// etcd's default --max-txn-ops (128) and checks that readers only ever see
// it complete.
func TestCreateTopicManyPartitions(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)

	images, cancel := v.Subscribe()
	defer cancel()
	partial := make(chan string, 1)
	go func() {
		for img := range images {
			if tp := img.Topics["big"]; tp != nil {
				for _, p := range tp.Partitions {
					if p.State.Leader != 0 || p.ModRevision == 0 {
						partial <- fmt.Sprintf("partition %d seen as %+v at revision %d", p.ID, p, img.Revision)
						return
					}
				}
			}
		}
	}()

	tspec, states := spec("big", 300)
	for i := range states {
		states[i].LeaderEpoch = int32(i) // distinguishable per partition
	}
	rev, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	tp := v.Image().Topics["big"]
	if tp == nil || len(tp.Partitions) != 300 || tp.ID != tspec.ID || tp.Configs["cleanup.policy"] != "delete" {
		t.Fatalf("image topic = %+v", tp)
	}
	if v.Image().TopicsByID[tspec.ID] != tp {
		t.Fatal("TopicsByID does not hold the topic")
	}
	for i, p := range tp.Partitions {
		if p.ID != int32(i) || p.State.LeaderEpoch != int32(i) || !slices.Equal(p.Replicas, []int32{0, 1}) ||
			!slices.Equal(p.State.ISR, []int32{0, 1}) {
			t.Fatalf("partition %d = %+v", i, p)
		}
	}
	cancel()
	select {
	case msg := <-partial:
		t.Fatalf("a reader saw the topic half-written: %s", msg)
	default:
	}

	if _, err := c.CreateTopic(ctx, tspec, states); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
	}
}

func TestCreateTopicValidates(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)
	good, states := spec("ok", 2)
	for name, mutate := range map[string]func(*TopicSpec, *[]PartitionState){
		"slash in name":      func(t *TopicSpec, _ *[]PartitionState) { t.Name = "a/b" },
		"empty name":         func(t *TopicSpec, _ *[]PartitionState) { t.Name = "" },
		"zero id":            func(t *TopicSpec, _ *[]PartitionState) { t.ID = [16]byte{} },
		"states mismatch":    func(_ *TopicSpec, st *[]PartitionState) { *st = (*st)[:1] },
		"no replicas":        func(t *TopicSpec, _ *[]PartitionState) { t.Replicas[1] = nil },
		"duplicate replicas": func(t *TopicSpec, _ *[]PartitionState) { t.Replicas[0] = []int32{1, 1} },
		"no partitions": func(t *TopicSpec, st *[]PartitionState) {
			t.Replicas, *st = nil, nil
		},
	} {
		ts, st := good, slices.Clone(states)
		ts.Replicas = slices.Clone(good.Replicas)
		mutate(&ts, &st)
		if _, err := c.CreateTopic(ctx, ts, st); err == nil {
			t.Errorf("%s: CreateTopic succeeded", name)
		}
	}
}

func TestCreateTopicClearsLeftovers(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)

	// An interrupted creation left partition keys but no topic key.
	for p := range int32(10) {
		if _, err := s.cli.Put(ctx, s.partitionKey("again", p), `{"leader":7,"leader_epoch":9,"isr":[7]}`); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := s.cli.Put(ctx, s.prefix+"marker", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Image().Topics["again"]; ok {
		t.Fatal("partition keys without a topic key made a topic")
	}

	tspec, states := spec("again", 3)
	crev, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, crev); err != nil {
		t.Fatal(err)
	}
	tp := v.Image().Topics["again"]
	if tp == nil || len(tp.Partitions) != 3 {
		t.Fatalf("topic = %+v", tp)
	}
	for _, p := range tp.Partitions {
		if p.State.Leader != 0 || p.State.LeaderEpoch != 0 {
			t.Fatalf("leftover state shows through: %+v", p)
		}
	}
	get, err := s.cli.Get(ctx, s.partitionsPrefix("again"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != 3 {
		t.Fatalf("partition keys after create: %v, %v; want 3", get, err)
	}
}

func TestDeleteTopicVisibleAtOnce(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)

	tspec, states := spec("doomed", 150)
	rev, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if v.Image().Topics["doomed"] == nil {
		t.Fatal("topic not visible after WaitForRevision")
	}
	rev, err = c.DeleteTopic(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	// No polling: the revision wait alone makes the deletion visible.
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	img := v.Image()
	if img.Topics["doomed"] != nil || img.TopicsByID[tspec.ID] != nil {
		t.Fatal("deleted topic still in the image")
	}
	get, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range get.Kvs {
		if k := string(kv.Key); k == s.topicKey("doomed") || len(k) > len(s.partitionsPrefix("doomed")) && k[:len(s.partitionsPrefix("doomed"))] == s.partitionsPrefix("doomed") {
			t.Fatalf("key %s survived the deletion", k)
		}
	}
	if _, err := c.DeleteTopic(ctx, "doomed"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second DeleteTopic: %v, want ErrUnknownTopic", err)
	}

	// Recreating the name gives a new topic ID in the image.
	tspec2, states2 := spec("doomed", 1)
	rev, err = c.CreateTopic(ctx, tspec2, states2)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if tp := v.Image().Topics["doomed"]; tp == nil || tp.ID != tspec2.ID || len(tp.Partitions) != 1 {
		t.Fatalf("recreated topic = %+v", tp)
	}
}

func TestAddPartitions(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)

	tspec, states := spec("grow", 2)
	if _, err := c.CreateTopic(ctx, tspec, states); err != nil {
		t.Fatal(err)
	}
	var assign [][]int32
	var more []PartitionState
	for i := range 150 {
		assign = append(assign, []int32{1, 2})
		more = append(more, PartitionState{Leader: 1, LeaderEpoch: int32(i), ISR: []int32{1, 2}})
	}
	rev, err := c.AddPartitions(ctx, "grow", assign, more)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	tp := v.Image().Topics["grow"]
	if tp == nil || len(tp.Partitions) != 152 || tp.ID != tspec.ID {
		t.Fatalf("grown topic = %+v", tp)
	}
	if p := tp.Partitions[0]; p.State.Leader != 0 || !slices.Equal(p.Replicas, []int32{0, 1}) {
		t.Fatalf("old partition changed: %+v", p)
	}
	for i := 2; i < 152; i++ {
		p := tp.Partitions[i]
		if p.State.Leader != 1 || p.State.LeaderEpoch != int32(i-2) || !slices.Equal(p.Replicas, []int32{1, 2}) {
			t.Fatalf("new partition %d = %+v", i, p)
		}
	}
	if _, err := c.AddPartitions(ctx, "nope", assign[:1], more[:1]); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("AddPartitions to unknown topic: %v", err)
	}
	if _, err := c.AddPartitions(ctx, "grow", assign[:2], more[:1]); err == nil {
		t.Fatal("mismatched AddPartitions accepted")
	}
}

func TestPartitionUpdates(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)

	tspec, states := spec("isr", 2)
	rev, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	p0 := v.Image().Topics["isr"].Partitions[0]

	// The leader shrinks the ISR.
	shrunk := PartitionState{Leader: 0, LeaderEpoch: 0, ISR: []int32{0}, PartitionEpoch: 1}
	mod, err := s.CompareAndSetPartition(ctx, "isr", 0, p0.ModRevision, shrunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, mod); err != nil {
		t.Fatal(err)
	}
	got := v.Image().Topics["isr"].Partitions[0]
	if got.ModRevision != mod || !slices.Equal(got.State.ISR, []int32{0}) || got.State.PartitionEpoch != 1 {
		t.Fatalf("after CAS: %+v (want mod rev %d)", got, mod)
	}
	// A second write from the stale revision loses.
	if _, err := s.CompareAndSetPartition(ctx, "isr", 0, p0.ModRevision, states[0]); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale CAS: %v, want ErrConflict", err)
	}
	// So does the controller when it decided on the old state...
	moved := PartitionState{Leader: 1, LeaderEpoch: 1, ISR: []int32{1}, PartitionEpoch: 2}
	if _, err := c.UpdatePartition(ctx, "isr", 0, p0.ModRevision, moved); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale UpdatePartition: %v, want ErrConflict", err)
	}
	// ...and wins with the current one, fencing the old leader's next CAS.
	if _, err := c.UpdatePartition(ctx, "isr", 0, mod, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSetPartition(ctx, "isr", 0, mod, shrunk); !errors.Is(err, ErrConflict) {
		t.Fatalf("zombie leader CAS: %v, want ErrConflict", err)
	}
	rev, err = c.UpdatePartition(ctx, "isr", 1, 0, moved) // unconditional
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if st := v.Image().Topics["isr"].Partitions[1].State; st.Leader != 1 || st.LeaderEpoch != 1 {
		t.Fatalf("partition 1 after UpdatePartition: %+v", st)
	}

	if _, err := c.UpdatePartition(ctx, "isr", 5, 0, moved); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("UpdatePartition of a missing partition: %v", err)
	}
	if _, err := c.UpdatePartition(ctx, "nope", 0, 0, moved); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("UpdatePartition of a missing topic: %v", err)
	}
	if _, err := c.DeleteTopic(ctx, "isr"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSetPartition(ctx, "isr", 0, mod, shrunk); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("CAS on a deleted topic: %v, want ErrUnknownTopic", err)
	}
}

func TestSetTopicConfigs(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)
	tspec, states := spec("conf", 2)
	rev, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	before := v.Image().Topics["conf"]
	rev, err = s.SetTopicConfigs(ctx, "conf", before.ModRevision, map[string]string{"retention.ms": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	after := v.Image().Topics["conf"]
	if after.Configs["retention.ms"] != "1000" || len(after.Configs) != 1 || after.ID != tspec.ID ||
		len(after.Partitions) != 2 || after.ModRevision != rev {
		t.Fatalf("after SetTopicConfigs: %+v", after)
	}
	if _, err := s.SetTopicConfigs(ctx, "conf", before.ModRevision, nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale SetTopicConfigs: %v, want ErrConflict", err)
	}
	if _, err := s.SetTopicConfigs(ctx, "none", 1, nil); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("SetTopicConfigs of a missing topic: %v", err)
	}
}

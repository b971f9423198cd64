package compat

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupTopicPartitions is the partition count of the rebalance scenarios'
// topic: enough for four members to each own at least one.
const groupTopicPartitions = 6

// TestGroupRebalanceFranz runs franz-go group members through a life: three
// members share a 6-partition topic under a steady producer, a fourth joins,
// one is SIGKILLed (no LeaveGroup: only the broker's session timeout removes
// it), one restarts. Throughout, no partition is owned by two members at
// once (callback intervals, and DescribeGroups at every stable point);
// nothing is lost; only the killed member's partitions may be read twice.
// Then everything is committed, the broker restarts on the same log
// directory, and the group resumes exactly at its committed offsets.
func TestGroupRebalanceFranz(t *testing.T) {
	for _, bal := range []string{"cooperative-sticky", "range"} {
		t.Run(bal, func(t *testing.T) { runRebalanceScenario(t, bal) })
	}
}

func runRebalanceScenario(t *testing.T, balancer string) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	topic, group := "rebalance-"+balancer, "group-"+balancer
	createTopic(t, adm, topic, groupTopicPartitions, nil)
	tr := newTracker(topic, groupTopicPartitions)
	bal, err := balancerByName(balancer)
	if err != nil {
		t.Fatal(err)
	}
	balOpt := kgo.Balancers(bal)
	prod := startProducer(t, b, topic, groupTopicPartitions, 4*time.Millisecond)

	// Three members: two in this process, one in a subprocess to be killed.
	m1 := startMember(t, b, tr, "m1", group, balOpt)
	m2 := startMember(t, b, tr, "m2", group, balOpt)
	victim := startMemberProcess(t, b, tr, "victim", group, balancer)
	waitGroupStable(t, adm, tr, group, "m1", "m2", "victim")
	waitConsumed(t, tr, prod, "three members")
	checkDescribedProtocol(t, adm, group, balancer)

	// A fourth member joins.
	m3 := startMember(t, b, tr, "m3", group, balOpt)
	waitGroupStable(t, adm, tr, group, "m1", "m2", "m3", "victim")
	waitConsumed(t, tr, prod, "after the fourth member joined")

	// The victim dies without leaving; the broker must expire it.
	mayRepeat := tr.partitionsOf("victim")
	if len(mayRepeat) == 0 {
		t.Fatalf("victim owns no partitions: %v", tr.owners())
	}
	victim.kill(tr)
	killed := time.Now()
	waitGroupStable(t, adm, tr, group, "m1", "m2", "m3")
	t.Logf("victim (owning %v) expired and its partitions reassigned %v after SIGKILL", mayRepeat, time.Since(killed).Round(time.Millisecond))
	waitConsumed(t, tr, prod, "after the victim's session expired")

	// m2 restarts: leaves (committing first) and a new client joins.
	m2.close()
	m2b := startMember(t, b, tr, "m2-restarted", group, balOpt)
	waitGroupStable(t, adm, tr, group, "m1", "m2-restarted", "m3")
	waitConsumed(t, tr, prod, "after m2 restarted")

	// Drain, commit synchronously, check what the broker stored.
	end := prod.halt(t)
	waitFor(t, 30*time.Second, "every produced record consumed", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	live := []*groupMember{m1, m2b, m3}
	for _, m := range live {
		m.commit(t)
	}
	tr.check(t)
	tr.checkNoOverlap(t)
	tr.checkExactlyOnce(t, end, mayRepeat)
	t.Logf("%d records consumed; re-read after the kill: %v", prod.produced(), tr.repeats())
	if got := fetchCommitted(t, adm, group, topic, groupTopicPartitions); !mapsEqual(got, end) {
		t.Fatalf("committed offsets %v, want the end offsets %v", got, end)
	}
	checkLag(t, adm, group, topic, end, end)

	// Everyone leaves; the group is Empty but keeps its offsets.
	for _, m := range live {
		m.close()
	}
	tr.check(t)
	waitFor(t, 15*time.Second, "group empty after every member left", func() error {
		d := describeGroup(t, adm, group)
		if d.Err != nil || d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q, %d members, err %v", d.State, len(d.Members), d.Err)
		}
		return nil
	})

	// An uncommitted tail, then a full broker restart.
	const tail = 25
	produceTail(t, b, topic, end, tail)
	b.Restart()
	adm = newAdmin(t, b)
	waitTopicReady(t, adm, topic, groupTopicPartitions)
	if got := fetchCommitted(t, adm, group, topic, groupTopicPartitions); !mapsEqual(got, end) {
		t.Fatalf("after restart: committed offsets %v, want %v", got, end)
	}
	d := describeGroup(t, adm, group)
	if d.Err != nil || d.State != "Empty" || d.ProtocolType != "consumer" {
		t.Fatalf("after restart: group state %q protocol type %q err %v, want Empty consumer", d.State, d.ProtocolType, d.Err)
	}
	newEnd := make(map[int32]int64)
	for p, e := range end {
		newEnd[p] = e + tail
	}
	checkLag(t, adm, group, topic, end, newEnd)

	// The group resumes: exactly the tail, from the committed offsets.
	tr2 := newTracker(topic, groupTopicPartitions)
	resumed := startMember(t, b, tr2, "resumed", group, balOpt)
	waitFor(t, 30*time.Second, "the uncommitted tail consumed after restart", func() error {
		if err := groupProblems(tr2); err != nil {
			return err
		}
		return tailConsumed(tr2, end, newEnd)
	})
	resumed.commit(t)
	tr2.check(t)
	tr2.mu.Lock()
	for p, offs := range tr2.seen {
		for o, n := range offs {
			if o < end[p] {
				t.Errorf("after restart partition %d re-read offset %d below its committed offset %d", p, o, end[p])
			}
			if n != 1 {
				t.Errorf("after restart partition %d offset %d read %d times", p, o, n)
			}
		}
	}
	tr2.mu.Unlock()
	if got := fetchCommitted(t, adm, group, topic, groupTopicPartitions); !mapsEqual(got, newEnd) {
		t.Fatalf("after consuming the tail: committed %v, want %v", got, newEnd)
	}
}

// waitConsumed waits until the members have consumed everything produced so
// far (plus whatever arrives meanwhile), proving the current assignment
// actually delivers records on every partition.
func waitConsumed(t *testing.T, tr *tracker, prod *seqProducer, when string) {
	t.Helper()
	prod.mu.Lock()
	target := maps64(prod.next)
	prod.mu.Unlock()
	waitFor(t, 30*time.Second, "records consumed "+when, func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(target)
	})
}

// checkDescribedProtocol checks that the group runs the assignor the members
// asked for, passed through by the broker untouched.
func checkDescribedProtocol(t *testing.T, adm *kadm.Client, group, balancer string) {
	t.Helper()
	d := describeGroup(t, adm, group)
	if d.Protocol != balancer {
		t.Errorf("group %s protocol %q, want %q", group, d.Protocol, balancer)
	}
}

// produceTail appends n records to every partition after end, synchronously.
func produceTail(t *testing.T, b *Broker, topic string, end map[int32]int64, n int) {
	t.Helper()
	cl := newClient(t, b, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	var recs []*kgo.Record
	for p, e := range end {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Partition: p, Value: []byte(seqValue(p, e+int64(i)))})
		}
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce tail: %v", err)
	}
	for _, r := range res {
		if string(r.Record.Value) != seqValue(r.Record.Partition, r.Record.Offset) {
			t.Fatalf("tail record %q stored at %d/%d", r.Record.Value, r.Record.Partition, r.Record.Offset)
		}
	}
}

// tailConsumed reports whether every offset in [from, to) was delivered.
func tailConsumed(tr *tracker, from, to map[int32]int64) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for p := range to {
		for o := from[p]; o < to[p]; o++ {
			if tr.seen[p][o] == 0 {
				return fmt.Errorf("partition %d: offset %d not consumed yet", p, o)
			}
		}
	}
	return nil
}

// TestGroupStaticMembership checks KIP-345: a static member (instance ID)
// that restarts within its session timeout gets its partitions back, and
// the other members see no rebalance at all: no callbacks, same generation.
func TestGroupStaticMembership(t *testing.T) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group = "static", "static-group"
	createTopic(t, adm, topic, groupTopicPartitions, nil)
	tr := newTracker(topic, groupTopicPartitions)
	prod := startProducer(t, b, topic, groupTopicPartitions, 4*time.Millisecond)
	static := func(name string) *groupMember {
		// The session outlives the restart; the default balancer
		// (cooperative-sticky) is used.
		return startMember(t, b, tr, name, group, kgo.InstanceID("instance-"+name), kgo.SessionTimeout(20*time.Second))
	}
	s1, s2, s3 := static("s1"), static("s2"), static("s3")
	waitGroupStable(t, adm, tr, group, "s1", "s2", "s3")
	waitConsumed(t, tr, prod, "three static members")

	before := describeGroup(t, adm, group)
	oldID, gen := s2.cl.GroupMetadata()
	owned := tr.partitionsOf("s2")
	others := map[*groupMember]int32{}
	for _, m := range []*groupMember{s1, s3} {
		_, g := m.cl.GroupMetadata()
		if g != gen {
			t.Fatalf("%s in generation %d, s2 in %d", m.name, g, gen)
		}
		others[m] = g
	}
	calls := func() map[string]int {
		out := map[string]int{}
		for _, n := range []string{"s1", "s3"} {
			for _, k := range []string{"assigned", "revoked", "lost"} {
				out[n+" "+k] = tr.eventCount(n, k)
			}
		}
		return out
	}
	callsBefore := calls()

	// A static member's Close sends no LeaveGroup: the broker keeps it.
	s2.close()
	d := describeGroup(t, adm, group)
	if d.State != "Stable" || len(d.Members) != 3 || !slices.ContainsFunc(d.Members, func(m kadm.DescribedGroupMember) bool { return m.MemberID == oldID }) {
		t.Fatalf("after the static member closed: state %q, %d members (want Stable, 3, still holding %s)", d.State, len(d.Members), oldID)
	}

	s2b := startMember(t, b, tr, "s2-restarted", group, kgo.InstanceID("instance-s2"), kgo.SessionTimeout(20*time.Second))
	waitFor(t, 20*time.Second, "restarted static member gets its partitions back", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		if got := tr.partitionsOf("s2-restarted"); !slices.Equal(got, owned) {
			return fmt.Errorf("restarted member owns %v, the old one owned %v", got, owned)
		}
		return nil
	})
	if id, g := s2b.cl.GroupMetadata(); g != gen || id == oldID {
		t.Errorf("restarted static member: member %s generation %d; want a new member ID (old %s) in the unchanged generation %d", id, g, oldID, gen)
	}
	// The others keep heartbeating every 200ms: a rebalance would reach
	// them within a few heartbeats. Watch for a while.
	holdFor(t, 2*time.Second, "no rebalance for the other static members", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		for m, g := range others {
			if _, now := m.cl.GroupMetadata(); now != g {
				return fmt.Errorf("%s moved from generation %d to %d", m.name, g, now)
			}
		}
		if got := calls(); !mapsEqual(got, callsBefore) {
			return fmt.Errorf("rebalance callbacks of the others changed: %v → %v", callsBefore, got)
		}
		return nil
	})
	after := describeGroup(t, adm, group)
	if after.State != "Stable" || len(after.Members) != 3 {
		t.Fatalf("after the restart: state %q with %d members", after.State, len(after.Members))
	}
	for i, m := range after.Members {
		was := before.Members[i]
		if m.InstanceID == nil || was.InstanceID == nil || *m.InstanceID != *was.InstanceID {
			t.Fatalf("members not sorted by instance ID as before: %+v vs %+v", m, was)
		}
		if *m.InstanceID != "instance-s2" && m.MemberID != was.MemberID {
			t.Errorf("instance %s changed member ID %s → %s", *m.InstanceID, was.MemberID, m.MemberID)
		}
	}
	waitGroupStable(t, adm, tr, group, "s1", "s2-restarted", "s3")

	end := prod.halt(t)
	waitFor(t, 30*time.Second, "every produced record consumed", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	tr.checkNoOverlap(t)
	tr.checkExactlyOnce(t, end, nil)
	for _, m := range []*groupMember{s1, s2b, s3} {
		m.commit(t)
	}
	if got := fetchCommitted(t, adm, group, topic, groupTopicPartitions); !mapsEqual(got, end) {
		t.Fatalf("committed offsets %v, want %v", got, end)
	}
}

// holdFor polls cond every 50ms for d and fails as soon as it is false: the
// way to assert that something does not happen within a window.
func holdFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

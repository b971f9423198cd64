package compat

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupConcurrentRebalances churns a group: members join and leave every
// few hundred milliseconds, closes overlapping joins, for several seconds.
// A live member must never be told UNKNOWN_MEMBER_ID (or lose its
// partitions to any other fatal group error); no partition may be owned by
// two members at once; every record is consumed.
func TestGroupConcurrentRebalances(t *testing.T) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group = "churn", "churn-group"
	createTopic(t, adm, topic, groupTopicPartitions, nil)
	tr := newTracker(topic, groupTopicPartitions)
	prod := startProducer(t, b, topic, groupTopicPartitions, 5*time.Millisecond)

	seed := time.Now().UnixNano()
	t.Logf("churn seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var (
		live    []*groupMember
		closing sync.WaitGroup
		started int
	)
	start := func() {
		started++
		name := fmt.Sprintf("c%d", started)
		// A longer session than the other tests: under churn on two
		// cores a heartbeat may be late, and an expiry here would be a
		// test artefact, not the bug this test hunts.
		live = append(live, startMember(t, b, tr, name, group, kgo.SessionTimeout(6*time.Second)))
	}
	stop := func() {
		i := rng.IntN(len(live))
		m := live[i]
		live = append(live[:i], live[i+1:]...)
		closing.Add(1)
		go func() {
			defer closing.Done()
			m.close()
		}()
	}
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if err := groupProblems(tr); err != nil {
			break
		}
		switch n := len(live); {
		case n < 2:
			start()
		case n >= 5:
			stop()
		case rng.IntN(2) == 0:
			start()
		default:
			stop()
		}
		// Pace the churn; this is load generation, not synchronisation.
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
	}
	closing.Wait()
	tr.check(t)

	var names []string
	for _, m := range live {
		names = append(names, m.name)
	}
	waitGroupStable(t, adm, tr, group, names...)
	_, gen := live[0].cl.GroupMetadata()
	if gen < 5 {
		t.Errorf("only %d generations after %d members came and went: the churn did not exercise rebalances", gen, started)
	}
	end := prod.halt(t)
	waitFor(t, 30*time.Second, "every produced record consumed", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	tr.check(t)
	tr.checkNoOverlap(t)
	t.Logf("%d members started, %d generations, %d records", started, gen, prod.produced())
}

// TestGroupInitialRebalanceDelay checks group.initial.rebalance.delay.ms:
// the first rebalance of a new group waits for the delay (and again when
// another member arrives meanwhile), so members starting together land in
// one generation instead of rebalancing once per member.
func TestGroupInitialRebalanceDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	b := StartBroker(t, "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=5",
		fmt.Sprintf("group.initial.rebalance.delay.ms=%d", delay.Milliseconds()))
	e := &edgeEnv{b: b, adm: newAdmin(t, b), versions: apiVersionsMap(t, b), topic: "delayed"}
	createTopic(t, e.adm, e.topic, 2, nil)
	v := e.maxV(11)

	a := newRawMember(t, e, "delayed-group", nil, e.topic)
	c := newRawMember(t, e, "delayed-group", nil, e.topic)
	for _, m := range []*rawMember{a, c} {
		resp := m.join(v)
		if resp.ErrorCode != errMemberIDRequired {
			t.Fatalf("first JoinGroup v%d: %s, want MEMBER_ID_REQUIRED", v, errCode(resp.ErrorCode))
		}
		m.id = resp.MemberID
	}
	began := time.Now()
	reqA := a.joinRequest(v)
	corrA := a.rc.send(reqA)
	// The second member arrives while the first waits out the delay: as
	// soon as the group is seen preparing its first rebalance.
	waitFor(t, 5*time.Second, "group preparing its first rebalance", func() error {
		if d := describeGroup(t, e.adm, "delayed-group"); d.State != "PreparingRebalance" {
			return fmt.Errorf("state %q", d.State)
		}
		return nil
	})
	arrived := time.Since(began)
	reqC := c.joinRequest(v)
	corrC := c.rc.send(reqC)
	respA := a.rc.awaitResponse(reqA, corrA, 10*time.Second).(*kmsg.JoinGroupResponse)
	tookA := time.Since(began)
	respC := c.rc.awaitResponse(reqC, corrC, 10*time.Second).(*kmsg.JoinGroupResponse)
	if respA.ErrorCode != 0 || respC.ErrorCode != 0 {
		t.Fatalf("JoinGroup: %s / %s", errCode(respA.ErrorCode), errCode(respC.ErrorCode))
	}
	if respA.Generation != 1 || respC.Generation != 1 {
		t.Errorf("generations %d and %d: both members should be in the group's first generation", respA.Generation, respC.Generation)
	}
	if respA.LeaderID != respC.LeaderID {
		t.Errorf("leaders %q and %q differ", respA.LeaderID, respC.LeaderID)
	}
	// Kafka: the first delay expires, sees that a member arrived meanwhile,
	// and waits one more delay (bounded by the rebalance timeout).
	if arrived >= delay {
		t.Fatalf("the second member arrived %v after the first, too late for this check", arrived)
	}
	if tookA < 2*delay-delay/10 || tookA > 7*time.Second {
		t.Errorf("first JoinGroup answered after %v; with group.initial.rebalance.delay.ms=%d and a second member arriving after %v, Kafka answers after about %v",
			tookA.Round(time.Millisecond), delay.Milliseconds(), arrived.Round(time.Millisecond), 2*delay)
	}
	for _, m := range []*rawMember{a, c} {
		m.leave()
	}
}

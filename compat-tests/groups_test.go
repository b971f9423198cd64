package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupOverrides are the broker settings every consumer-group test starts
// with. A single broker cannot hold three replicas of __consumer_offsets (the
// shipped server.properties of Kafka sets the factor to 1 too), five offsets
// partitions keep the topic's creation fast, a zero initial rebalance delay
// keeps joins fast (TestGroupInitialRebalanceDelay checks the delay itself),
// and a low minimum session timeout lets a killed member expire in about two
// seconds instead of Kafka's minimum of six.
var groupOverrides = []string{
	"offsets.topic.replication.factor=1",
	"offsets.topic.num.partitions=5",
	"group.initial.rebalance.delay.ms=0",
	"group.min.session.timeout.ms=500",
}

// startGroupBroker starts a broker with groupOverrides plus extra (later keys
// win, as with repeated --override flags).
func startGroupBroker(t *testing.T, extra ...string) *Broker {
	t.Helper()
	return StartBroker(t, append(slices.Clone(groupOverrides), extra...)...)
}

// seqValue is the value of the record at offset o of partition p in every
// group test topic: a consumer can check that what it read at an offset is
// the record that was produced there.
func seqValue(p int32, o int64) string { return fmt.Sprintf("p%d-%d", p, o) }

// interval is one member's ownership of one partition, in wall-clock
// nanoseconds (comparable across the test process and its member
// subprocesses). end is 0 while the member still owns the partition.
type interval struct {
	member     string
	gen        int32
	start, end int64
}

// tracker is the shared record of who owned which partition when, and of
// every record any member consumed. Members report from their rebalance
// callbacks and poll loops (in this process or, for subprocess members, via
// their stdout); the test asserts on it. All fields are guarded by mu.
type tracker struct {
	topic string
	parts int32

	mu        sync.Mutex
	intervals map[int32][]*interval
	// seen counts deliveries per partition and offset.
	seen map[int32]map[int64]int
	// events counts rebalance callbacks per member ("assigned", "revoked",
	// "lost").
	events map[string]map[string]int
	// memberIDs maps a Kafka member ID to the test's member name.
	memberIDs map[string]string
	problems  []string
}

func newTracker(topic string, parts int32) *tracker {
	return &tracker{
		topic:     topic,
		parts:     parts,
		intervals: make(map[int32][]*interval),
		seen:      make(map[int32]map[int64]int),
		events:    make(map[string]map[string]int),
		memberIDs: make(map[string]string),
	}
}

// problem records an assertion failure seen on a member's goroutine; the
// test goroutine reports it (t.Fatal must not run elsewhere).
func (tr *tracker) problem(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.problems = append(tr.problems, fmt.Sprintf(format, args...))
}

// check fails the test with every recorded problem.
func (tr *tracker) check(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.problems) > 0 {
		t.Fatalf("%d problem(s) seen by group members:\n%s", len(tr.problems), strings.Join(tr.problems, "\n"))
	}
}

func (tr *tracker) countEvent(member, kind string) {
	if tr.events[member] == nil {
		tr.events[member] = make(map[string]int)
	}
	tr.events[member][kind]++
}

// eventCount is how many callbacks of kind member has had so far.
func (tr *tracker) eventCount(member, kind string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.events[member][kind]
}

// assigned opens an ownership interval for each partition. Overlap with
// another member is checked by checkNoOverlap, which also covers reports
// that arrive late from a subprocess.
func (tr *tracker) assigned(member, memberID string, gen int32, at int64, parts []int32) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.countEvent(member, "assigned")
	if memberID != "" {
		tr.memberIDs[memberID] = member
	}
	for _, p := range parts {
		for _, iv := range tr.intervals[p] {
			if iv.member == member && iv.end == 0 {
				tr.problems = append(tr.problems, fmt.Sprintf("%s assigned partition %d (gen %d) that it already owns since gen %d", member, p, gen, iv.gen))
			}
		}
		tr.intervals[p] = append(tr.intervals[p], &interval{member: member, gen: gen, start: at})
	}
}

// released closes member's intervals for parts; kind is "revoked" or
// "lost", or "killed", which closes all of them. (A callback may report an
// empty revocation: kgo calls OnPartitionsRevoked at the end of every
// cooperative session.)
func (tr *tracker) released(member, kind string, at int64, parts []int32) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if kind != "killed" {
		tr.countEvent(member, kind)
	}
	for p, ivs := range tr.intervals {
		if kind != "killed" && !slices.Contains(parts, p) {
			continue
		}
		for _, iv := range ivs {
			if iv.member == member && iv.end == 0 {
				iv.end = at
			}
		}
	}
}

// record notes one consumed record and checks that its value is the one
// produced at its offset.
func (tr *tracker) record(member string, p int32, o int64, value string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if want := seqValue(p, o); value != want {
		tr.problems = append(tr.problems, fmt.Sprintf("%s read %q at %d/%d, want %q", member, value, p, o, want))
	}
	if tr.seen[p] == nil {
		tr.seen[p] = make(map[int64]int)
	}
	tr.seen[p][o]++
}

// owners returns the members that currently own each partition.
func (tr *tracker) owners() map[int32][]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[int32][]string)
	for p, ivs := range tr.intervals {
		for _, iv := range ivs {
			if iv.end == 0 {
				out[p] = append(out[p], iv.member)
			}
		}
	}
	return out
}

// partitionsOf returns the partitions member currently owns, sorted.
func (tr *tracker) partitionsOf(member string) []int32 {
	var out []int32
	for p, ms := range tr.owners() {
		if slices.Contains(ms, member) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// checkNoOverlap fails if two different members ever owned the same
// partition at the same time (an open interval lasts until now).
func (tr *tracker) checkNoOverlap(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	const open = int64(1<<63 - 1)
	for p, ivs := range tr.intervals {
		for i, a := range ivs {
			for _, b := range ivs[i+1:] {
				if a.member == b.member {
					continue
				}
				aEnd, bEnd := a.end, b.end
				if aEnd == 0 {
					aEnd = open
				}
				if bEnd == 0 {
					bEnd = open
				}
				if a.start < bEnd && b.start < aEnd {
					t.Errorf("partition %d owned by %s (gen %d, %s) and %s (gen %d, %s) at the same time",
						p, a.member, a.gen, span(a), b.member, b.gen, span(b))
				}
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func span(iv *interval) string {
	if iv.end == 0 {
		return fmt.Sprintf("from %s, still owned", time.Unix(0, iv.start).Format("15:04:05.000000"))
	}
	return fmt.Sprintf("%s–%s", time.Unix(0, iv.start).Format("15:04:05.000000"), time.Unix(0, iv.end).Format("15:04:05.000000"))
}

// consumedThrough reports whether every offset below end[p] of every
// partition was delivered at least once.
func (tr *tracker) consumedThrough(end map[int32]int64) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for p, e := range end {
		for o := int64(0); o < e; o++ {
			if tr.seen[p][o] == 0 {
				return fmt.Errorf("partition %d: offset %d of %d not consumed yet", p, o, e)
			}
		}
	}
	return nil
}

// checkExactlyOnce fails if a partition outside mayRepeat was delivered
// twice at any offset, or anything past end was delivered.
func (tr *tracker) checkExactlyOnce(t *testing.T, end map[int32]int64, mayRepeat []int32) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for p, offs := range tr.seen {
		var dups []int64
		for o, n := range offs {
			if o >= end[p] {
				t.Errorf("partition %d: offset %d delivered but the end offset is %d", p, o, end[p])
			}
			if n > 1 {
				dups = append(dups, o)
			}
		}
		if len(dups) > 0 && !slices.Contains(mayRepeat, p) {
			slices.Sort(dups)
			t.Errorf("partition %d: %d offsets delivered more than once (first %d) although no member owning it died; committed offsets were not honoured", p, len(dups), dups[0])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// repeats counts offsets delivered more than once, per partition.
func (tr *tracker) repeats() map[int32]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[int32]int)
	for p, offs := range tr.seen {
		for _, n := range offs {
			if n > 1 {
				out[p]++
			}
		}
	}
	return out
}

// groupMember is one in-process franz-go group consumer whose callbacks and
// records feed a tracker. Its poll loop runs until the client is closed.
type groupMember struct {
	name string
	cl   *kgo.Client
	done chan struct{}
	// closing is set before Close, so errors caused by leaving are not
	// blamed on a live member.
	mu      sync.Mutex
	closing bool
}

// memberOpts are the group settings shared by in-process and subprocess
// members: short heartbeats so rebalances are noticed quickly, a two-second
// session so a killed member expires quickly.
func memberOpts(group, topic string, session time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.AutoCommitInterval(300 * time.Millisecond),
	}
}

// startMember starts a group member named name. Its revoke callback commits
// what it has consumed before giving partitions up, as an at-least-once
// application must; a lost callback or a poll error is a problem.
func startMember(t *testing.T, b *Broker, tr *tracker, name, group string, extra ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{name: name, done: make(chan struct{})}
	opts := append(memberOpts(group, tr.topic, 2*time.Second),
		kgo.ClientID("compat-"+name),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, a map[string][]int32) {
			id, gen := cl.GroupMetadata()
			tr.assigned(name, id, gen, time.Now().UnixNano(), a[tr.topic])
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && !m.isClosing() {
				tr.problem("%s: commit before revoking %v: %v", name, r[tr.topic], err)
			}
			tr.released(name, "revoked", time.Now().UnixNano(), r[tr.topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			tr.released(name, "lost", time.Now().UnixNano(), l[tr.topic])
			if !m.isClosing() {
				tr.problem("%s lost partitions %v while live (a fatal group error such as UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION)", name, l[tr.topic])
			}
		}),
		kgo.WithHooks(manageErrHook(func(err error) {
			if !m.isClosing() {
				tr.problem("%s: group session error while live: %v", name, err)
			}
		})),
	)
	m.cl = newClient(t, b, append(opts, extra...)...)
	go m.poll(tr)
	t.Cleanup(m.close)
	return m
}

func (m *groupMember) isClosing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

func (m *groupMember) poll(tr *tracker) {
	defer close(m.done)
	for {
		fs := m.cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) || m.isClosing() {
				return
			}
			tr.problem("%s: poll error %s/%d: %v", m.name, topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			tr.record(m.name, r.Partition, r.Offset, string(r.Value))
		})
	}
}

// close leaves the group (a dynamic member sends LeaveGroup; a static one
// does not) after committing in its revoke callback. Safe to call twice.
func (m *groupMember) close() {
	m.mu.Lock()
	already := m.closing
	m.closing = true
	m.mu.Unlock()
	if already {
		<-m.done
		return
	}
	m.cl.Close()
	<-m.done
}

// commit synchronously commits everything this member has polled.
func (m *groupMember) commit(t *testing.T) {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("%s: commit: %v", m.name, err)
	}
}

// manageErrHook adapts a function to kgo.HookGroupManageError.
type manageErrHook func(error)

func (h manageErrHook) OnGroupManageError(err error) { h(err) }

// seqProducer produces a steady stream to every partition of a topic, each
// record's value being seqValue(partition, offset); it checks that every
// record lands at the offset its value names.
type seqProducer struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	next map[int32]int64 // next value per partition, also its expected offset
	errs []string
}

// startProducer produces one record every interval, round robin over the
// partitions. The topic must be new (offsets start at 0).
func startProducer(t *testing.T, b *Broker, topic string, parts int32, every time.Duration) *seqProducer {
	t.Helper()
	sp := &seqProducer{
		cl: newClient(t, b, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0)),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		next: make(map[int32]int64),
	}
	go func() {
		defer close(sp.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := int32(0); ; i++ {
			select {
			case <-sp.stop:
				return
			case <-tick.C:
			}
			p := i % parts
			sp.mu.Lock()
			n := sp.next[p]
			sp.next[p]++
			sp.mu.Unlock()
			r := &kgo.Record{Partition: p, Value: []byte(seqValue(p, n))}
			sp.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				sp.mu.Lock()
				defer sp.mu.Unlock()
				switch {
				case err != nil:
					sp.errs = append(sp.errs, fmt.Sprintf("produce %d/%d: %v", p, n, err))
				case r.Offset != n:
					sp.errs = append(sp.errs, fmt.Sprintf("record %q stored at offset %d", r.Value, r.Offset))
				}
			})
		}
	}()
	t.Cleanup(func() { sp.halt(t) })
	return sp
}

// halt stops producing, waits for every outstanding record, and returns the
// number produced per partition (the end offsets). Safe to call twice.
func (sp *seqProducer) halt(t *testing.T) map[int32]int64 {
	t.Helper()
	select {
	case <-sp.stop:
	default:
		close(sp.stop)
	}
	<-sp.done
	ctx := testCtx(t, 30*time.Second)
	if err := sp.cl.Flush(ctx); err != nil {
		t.Errorf("flush producer: %v", err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.errs) > 0 {
		t.Fatalf("producer: %s", strings.Join(sp.errs, "; "))
	}
	return maps64(sp.next)
}

// produced returns how many records have been handed to the client so far.
func (sp *seqProducer) produced() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var n int64
	for _, v := range sp.next {
		n += v
	}
	return n
}

func maps64(m map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// describeGroup returns DescribeGroups for one group, failing on a request
// error.
func describeGroup(t *testing.T, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	d, ok := ds[group]
	if !ok {
		t.Fatalf("describe group %s: group missing from response", group)
	}
	return d
}

// groupAgrees checks that DescribeGroups shows a Stable group whose members
// are exactly want (test names, resolved through member IDs the members
// reported) and whose member assignments are disjoint, cover every
// partition, and equal what each member's callbacks said it owns.
func groupAgrees(ctx context.Context, adm *kadm.Client, tr *tracker, group string, want []string) error {
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return err
	}
	d := ds[group]
	if d.Err != nil {
		return d.Err
	}
	if d.State != "Stable" {
		return fmt.Errorf("state %q", d.State)
	}
	if d.ProtocolType != "consumer" {
		return fmt.Errorf("protocol type %q, want consumer", d.ProtocolType)
	}
	tr.mu.Lock()
	ids := make(map[string]string, len(tr.memberIDs))
	for k, v := range tr.memberIDs {
		ids[k] = v
	}
	tr.mu.Unlock()
	var names []string
	described := make(map[int32]string)
	for _, m := range d.Members {
		name, ok := ids[m.MemberID]
		if !ok {
			return fmt.Errorf("member %s not (yet) known to the test", m.MemberID)
		}
		names = append(names, name)
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			return fmt.Errorf("member %s (%s): assignment is not a consumer assignment", name, m.MemberID)
		}
		for _, at := range c.Topics {
			if at.Topic != tr.topic {
				return fmt.Errorf("member %s assigned unexpected topic %q", name, at.Topic)
			}
			for _, p := range at.Partitions {
				if prev, dup := described[p]; dup {
					return fmt.Errorf("DescribeGroups assigns partition %d to both %s and %s", p, prev, name)
				}
				described[p] = name
			}
		}
	}
	sort.Strings(names)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(names, w) {
		return fmt.Errorf("members %v, want %v", names, w)
	}
	owners := tr.owners()
	for p := int32(0); p < tr.parts; p++ {
		if len(owners[p]) != 1 {
			return fmt.Errorf("partition %d owned by %v according to the members' callbacks (DescribeGroups: %v)", p, owners[p], described)
		}
		if described[p] != owners[p][0] {
			return fmt.Errorf("partition %d: DescribeGroups says %q, callbacks say %q", p, described[p], owners[p][0])
		}
	}
	return nil
}

// waitGroupStable polls until groupAgrees holds for the members want.
func waitGroupStable(t *testing.T, adm *kadm.Client, tr *tracker, group string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := groupProblems(tr)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = groupAgrees(ctx, adm, tr, group, want)
			cancel()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s stable with members %v: not true after 30s: %v\n%s", group, want, err, tr.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.check(t)
}

// dump renders the ownership history for a failure message.
func (tr *tracker) dump() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var sb strings.Builder
	for p := int32(0); p < tr.parts; p++ {
		fmt.Fprintf(&sb, "partition %d:", p)
		for _, iv := range tr.intervals[p] {
			fmt.Fprintf(&sb, " [%s gen %d %s]", iv.member, iv.gen, span(iv))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "member IDs: %v\ncallbacks: %v", tr.memberIDs, tr.events)
	return sb.String()
}

// groupProblems returns the first recorded problem, so a wait ends early
// with the real cause instead of a timeout.
func groupProblems(tr *tracker) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.problems) > 0 {
		return fmt.Errorf("%s", tr.problems[0])
	}
	return nil
}

// fetchCommitted returns the committed offset of every partition of topic
// for group (-1 where none is committed).
func fetchCommitted(t *testing.T, adm *kadm.Client, group, topic string, parts int32) map[int32]int64 {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	resp, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := make(map[int32]int64)
	for p := int32(0); p < parts; p++ {
		o, ok := resp.Lookup(topic, p)
		switch {
		case !ok:
			t.Fatalf("fetch offsets of %s: %s/%d missing", group, topic, p)
		case o.Err != nil:
			t.Fatalf("fetch offsets of %s: %s/%d: %v", group, topic, p, o.Err)
		}
		out[p] = o.At
	}
	return out
}

// checkLag asserts kadm's Lag for group: every partition of topic committed
// at want[p], with lag end-want.
func checkLag(t *testing.T, adm *kadm.Client, group, topic string, want, end map[int32]int64) {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("lag of %s: %v", group, err)
	}
	l, ok := lags[group]
	if !ok {
		t.Fatalf("lag of %s: group missing", group)
	}
	if l.DescribeErr != nil || l.FetchErr != nil {
		t.Fatalf("lag of %s: describe %v, fetch %v", group, l.DescribeErr, l.FetchErr)
	}
	for p, w := range want {
		ml, ok := l.Lag.Lookup(topic, p)
		if !ok {
			t.Errorf("lag of %s: %s/%d missing", group, topic, p)
			continue
		}
		if ml.Err != nil || ml.Commit.At != w || ml.End.Offset != end[p] || ml.Lag != end[p]-w {
			t.Errorf("lag of %s %s/%d: commit %d end %d lag %d err %v, want commit %d end %d lag %d",
				group, topic, p, ml.Commit.At, ml.End.Offset, ml.Lag, ml.Err, w, end[p], end[p]-w)
		}
	}
}

package compat

// The exactly-once copy chain: the workload Kafka Streams-style
// applications run, and the one franz-go's CI runs against Apache Kafka.
// Records are produced transactionally to topic 0; stage i copies topic i
// to topic i+1 with a consumer group of franz-go GroupTransactSession
// members (read_committed, control records kept, offsets committed inside
// each transaction); members quit after a few transactions while others
// join, so every group rebalances while transactions are open. Each stage
// must commit every input record exactly once, and a read_committed reader
// of the last topic must see exactly the records produced.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// chainFlavour is how one chain's groups balance: classic eager or
// cooperative balancers, KIP-848 server-side assignment, with or without
// static membership.
type chainFlavour struct {
	name     string
	balancer kgo.GroupBalancer
	kip848   bool
	static   bool
}

var chainFlavours = []chainFlavour{
	{"range", kgo.RangeBalancer(), false, false},
	{"cooperative-sticky", kgo.CooperativeStickyBalancer(), false, false},
	{"range-848", kgo.RangeBalancer(), true, false},
	{"sticky-848", kgo.StickyBalancer(), true, false},
	{"cooperative-sticky-static", kgo.CooperativeStickyBalancer(), false, true},
	{"sticky-848-static", kgo.StickyBalancer(), true, true},
}

// chainSpec sizes one run of the chain.
type chainSpec struct {
	records    int
	partitions int32
	stages     int
	rf         int16
	seeds      func() []string // the brokers clients start from, read when a client starts
	// churnEvery is how often each stage starts a member that quits after
	// a few transactions, until the stage is nine tenths done; 0 turns
	// that churn off (the fixed joins and quits still happen).
	churnEvery time.Duration
	// strict fails the run on any fetch error a member sees; a cluster
	// run that kills brokers expects some.
	strict bool
}

// chainRecordsEnv overrides the record count of the single-broker chain
// (KBROKER_CHAIN_RECORDS=500000 is the size issue 9 was found at).
const chainRecordsEnv = "KBROKER_CHAIN_RECORDS"

func chainRecords(t *testing.T, def int) int {
	t.Helper()
	s := os.Getenv(chainRecordsEnv)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive record count", chainRecordsEnv, s)
	}
	return n
}

// TestTxnChain runs the copy chain once per group flavour, all at once,
// on one broker (issue 9: some stages committed records twice).
func TestTxnChain(t *testing.T) {
	b := startTxnBroker(t)
	spec := chainSpec{
		records:    chainRecords(t, 100000),
		partitions: 10,
		stages:     2,
		rf:         1,
		seeds:      func() []string { return []string{b.Addr()} },
		churnEvery: 1500 * time.Millisecond,
		strict:     true,
	}
	runChains(t, spec, chainFlavours, 6*time.Minute, nil)
}

// chainRun is one chain: its topics, its stages and what they committed.
type chainRun struct {
	t       *testing.T
	spec    chainSpec
	flavour chainFlavour
	topics  []string // topics[0] is produced, topics[i+1] is stage i's output
	stages  []*chainStage
	errs    chan<- error
}

// chainStage is one copier group. Its members record, under mu, every
// input position (partition, offset; control records included) and every
// key their committed transactions consumed.
type chainStage struct {
	run        *chainRun
	index      int
	in, out    string
	group      string
	members    sync.WaitGroup
	membersRun atomic.Int64
	instances  atomic.Int64

	mu        sync.Mutex
	positions map[chainPosition]string // -> transactional ID that committed it
	keyCount  []int32
	consumed  int // data records in committed transactions
	problems  []string
}

type chainPosition struct {
	partition int32
	offset    int64
}

// runChains starts one chain per flavour, waits until every stage has
// committed every record or d passes, and checks each chain. midRun, when
// set, is called once the chains have copied a third of their records
// (the cluster variant kills a broker there).
func runChains(t *testing.T, spec chainSpec, flavours []chainFlavour, d time.Duration, midRun func()) {
	t.Helper()
	ctx := testCtx(t, d)
	errs := make(chan error, 64)
	seed := uint64(time.Now().UnixNano())
	t.Logf("chain: %d records, %d partitions, %d stages, %d flavours, seed %d", spec.records, spec.partitions, spec.stages, len(flavours), seed)
	adm := kadm.NewClient(chainClient(t, spec))
	var runs []*chainRun
	for i, f := range flavours {
		r := &chainRun{t: t, spec: spec, flavour: f, errs: errs}
		for s := 0; s <= spec.stages; s++ {
			r.topics = append(r.topics, fmt.Sprintf("chain-%s-%d", f.name, s))
		}
		resp, err := adm.CreateTopics(ctx, spec.partitions, spec.rf, nil, r.topics...)
		if err != nil {
			t.Fatalf("create chain topics: %v", err)
		}
		for _, tr := range resp.Sorted() {
			if tr.Err != nil {
				t.Fatalf("create %s: %v", tr.Topic, tr.Err)
			}
		}
		for s := 0; s < spec.stages; s++ {
			r.stages = append(r.stages, &chainStage{
				run: r, index: s, in: r.topics[s], out: r.topics[s+1],
				group:     fmt.Sprintf("chain-%s-stage%d", f.name, s),
				positions: map[chainPosition]string{},
				keyCount:  make([]int32, spec.records),
			})
		}
		runs = append(runs, r)
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		go r.produce(ctx)
		for _, st := range r.stages {
			st.start(ctx, rng.Uint64())
		}
	}

	copied := func() (done, total int) {
		for _, r := range runs {
			for _, st := range r.stages {
				st.mu.Lock()
				done += min(st.consumed, spec.records)
				st.mu.Unlock()
				total += spec.records
			}
		}
		return done, total
	}
	start := time.Now()
	midRunDone := midRun == nil
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
wait:
	for {
		select {
		case err := <-errs:
			t.Fatalf("chain failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		case <-ctx.Done():
			done, total := copied()
			t.Fatalf("chains not done after %v: %d of %d stage records committed (liveness)", d, done, total)
		case <-tick.C:
			done, total := copied()
			if !midRunDone && done >= total/3 {
				midRunDone = true
				midRun()
			}
			if time.Since(lastReport) > 10*time.Second {
				lastReport = time.Now()
				t.Logf("chain progress: %d of %d stage records committed", done, total)
			}
			if done == total {
				break wait
			}
		}
	}
	t.Logf("every stage committed %d records in %v", spec.records, time.Since(start).Round(time.Millisecond))
	for _, r := range runs {
		for _, st := range r.stages {
			st.members.Wait()
		}
	}
	t.Logf("every member left after %v", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, r := range runs {
		for _, st := range r.stages {
			for _, p := range st.problems {
				t.Logf("%s stage %d: %s", r.flavour.name, st.index, p)
			}
		}
		r.check(ctx, adm)
	}
	t.Logf("every chain checked after %v", time.Since(start).Round(time.Millisecond))
}

// chainClient is a plain client over spec's seeds, closed with the test.
func chainClient(t *testing.T, spec chainSpec, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(spec.seeds()...),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(60 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// fail reports the chain's first failure; later ones are dropped.
func (r *chainRun) fail(format string, args ...any) {
	select {
	case r.errs <- fmt.Errorf("%s: "+format, append([]any{r.flavour.name}, args...)...):
	default:
	}
}

// produce writes records 0..n-1 (key = the record's number) to the
// chain's first topic in transactions of a tenth of the records each.
func (r *chainRun) produce(ctx context.Context) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(r.spec.seeds()...),
		kgo.TransactionalID("chain-producer-"+r.flavour.name),
		kgo.TransactionTimeout(2*time.Minute),
		kgo.DefaultProduceTopic(r.topics[0]),
		kgo.MaxBufferedRecords(10000),
		kgo.RequestTimeoutOverhead(5*time.Second),
	)
	if err != nil {
		r.fail("producer: %v", err)
		return
	}
	defer cl.Close()
	perTxn := max(1, r.spec.records/10)
	value := []byte("chain-record")
	for first := 0; first < r.spec.records; first += perTxn {
		if err := cl.BeginTransaction(); err != nil {
			r.fail("producer: begin: %v", err)
			return
		}
		for i := first; i < min(first+perTxn, r.spec.records); i++ {
			cl.Produce(ctx, &kgo.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					r.fail("producer: record %d: %v", i, err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			r.fail("producer: flush: %v", err)
			return
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			r.fail("producer: commit: %v", err)
			return
		}
	}
}

// start runs the stage's members: three that copy until the stage is done
// and some that quit early, more of both a moment later, and then, every
// churnEvery, one that quits after one to three transactions.
func (st *chainStage) start(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(st.index)))
	for range 3 {
		st.goMember(ctx, -1)
	}
	switch st.index {
	case 0:
		st.goMember(ctx, 0)
		st.goMember(ctx, 2)
	case 1:
		st.goMember(ctx, 2)
	}
	go func() {
		// Workload shaping: the second wave joins once the first is
		// copying, so its joins rebalance a busy group.
		if !sleepCtx(ctx, 2*time.Second) {
			return
		}
		for range 3 {
			st.goMember(ctx, -1)
		}
		switch st.index {
		case 0:
			st.goMember(ctx, 1)
		case 1:
			st.goMember(ctx, 0)
		}
		if st.run.spec.churnEvery <= 0 {
			return
		}
		for {
			if !sleepCtx(ctx, st.run.spec.churnEvery/2+time.Duration(rng.Int64N(int64(st.run.spec.churnEvery)))) {
				return
			}
			st.mu.Lock()
			nearlyDone := st.consumed >= st.run.spec.records*9/10
			st.mu.Unlock()
			if nearlyDone {
				return
			}
			st.goMember(ctx, 1+rng.IntN(3))
		}
	}()
}

// sleepCtx sleeps for d unless ctx ends first, and reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (st *chainStage) done() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.consumed >= st.run.spec.records
}

func (st *chainStage) goMember(ctx context.Context, txnsBeforeQuit int) {
	st.goMemberAs(ctx, fmt.Sprintf("%s-m%d", st.group, st.membersRun.Add(1)), txnsBeforeQuit)
}

func (st *chainStage) goMemberAs(ctx context.Context, txnID string, txnsBeforeQuit int) {
	st.members.Add(1)
	go func() {
		defer st.members.Done()
		st.member(ctx, txnID, txnsBeforeQuit)
	}()
}

// memberFailed handles a member whose session returned an error it cannot
// continue from. A strict run fails. Otherwise (brokers are being killed)
// the member does what an application does: it is replaced by a new
// client with the same transactional ID, whose InitProducerId fences the
// old one and aborts its open transaction.
func (st *chainStage) memberFailed(ctx context.Context, txnID string, txnsLeft int, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	if st.run.spec.strict {
		st.run.fail("stage %d member %s: %s: %v", st.index, txnID, what, err)
		return
	}
	st.mu.Lock()
	st.problems = append(st.problems, fmt.Sprintf("member %s restarted after %s: %v", txnID, what, err))
	restarts := len(st.problems)
	st.mu.Unlock()
	if restarts > 100 {
		st.run.fail("stage %d: members restarted %d times; last: %s: %v", st.index, restarts, what, err)
		return
	}
	st.goMemberAs(ctx, txnID, txnsLeft)
}

// member is one GroupTransactSession copier. It commits txnsBeforeQuit
// transactions (forever when negative: until the stage is done), then
// aborts the next one and leaves the group.
func (st *chainStage) member(ctx context.Context, txnID string, txnsBeforeQuit int) {
	r := st.run
	f := r.flavour
	opts := []kgo.Opt{
		kgo.SeedBrokers(r.spec.seeds()...),
		kgo.ClientID(txnID),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60 * time.Second),
		kgo.SessionTimeout(20 * time.Second),
		kgo.ConsumerGroup(st.group),
		kgo.ConsumeTopics(st.in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.Balancers(f.balancer),
		kgo.MaxBufferedRecords(10000),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.UnknownTopicRetries(-1),
	}
	if os.Getenv("KBROKER_CHAIN_LOG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") + txnID + " " })))
	}
	var instanceID string
	if f.static {
		instanceID = fmt.Sprintf("%s-i%d", st.group, st.instances.Add(1))
		opts = append(opts, kgo.InstanceID(instanceID))
	}
	if f.kip848 {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		r.fail("stage %d member %s: %v", st.index, txnID, err)
		return
	}
	defer func() {
		sess.Close()
		if instanceID != "" {
			st.leaveStatic(instanceID)
		}
	}()

	type consumed struct {
		pos  chainPosition
		key  int
		data bool
	}
	var batch []consumed
	txnsLeft := func(done int) int {
		if txnsBeforeQuit < 0 {
			return -1
		}
		return txnsBeforeQuit - done
	}
	for txns := 0; ctx.Err() == nil; {
		pollCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fs := sess.PollFetches(pollCtx)
		cancel()
		if st.done() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			if r.spec.strict {
				r.fail("stage %d member %s: fetch %s/%d: %v", st.index, txnID, topic, p, err)
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			st.memberFailed(ctx, txnID, txnsLeft(txns), "begin", err)
			return
		}
		batch = batch[:0]
		fs.EachRecord(func(rec *kgo.Record) {
			pos := chainPosition{rec.Partition, rec.Offset}
			if rec.Attrs.IsControl() {
				batch = append(batch, consumed{pos: pos})
				return
			}
			key, err := strconv.Atoi(string(rec.Key))
			if err != nil || key < 0 || key >= r.spec.records {
				r.fail("stage %d: input %s/%d@%d has key %q, no record the producer wrote", st.index, rec.Topic, rec.Partition, rec.Offset, rec.Key)
				return
			}
			batch = append(batch, consumed{pos: pos, key: key, data: true})
			sess.Produce(ctx, &kgo.Record{Topic: st.out, Key: rec.Key, Value: rec.Value}, func(_ *kgo.Record, err error) {
				if err != nil && !errors.Is(err, kgo.ErrAborting) {
					r.fail("stage %d member %s: produce: %v", st.index, txnID, err)
				}
			})
		})
		wantCommit := txnsBeforeQuit < 0 || txns < txnsBeforeQuit
		committed, err := sess.End(ctx, kgo.TransactionEndTry(wantCommit))
		switch {
		case err != nil && !wantCommit && errors.Is(err, kerr.ProducerFenced):
			// The client's own race, as against Kafka: quitting right
			// after a commit, franz-go aborts the empty transaction with
			// the bumped epoch while the commit's markers are still being
			// written (PrepareCommit), which Kafka's endTransaction
			// answers PRODUCER_FENCED. Nothing of this transaction was
			// produced or committed.
			return
		case err != nil:
			st.memberFailed(ctx, txnID, txnsLeft(txns), "end transaction", err)
			return
		case !committed && !wantCommit:
			return
		case !committed:
			continue
		}
		txns++
		st.recordCommitted(txnID, func(add func(pos chainPosition, key int, data bool)) {
			for _, c := range batch {
				add(c.pos, c.key, c.data)
			}
		})
	}
}

// recordCommitted accounts for a committed transaction's input: a
// position committed twice, or more records than were produced, fails the
// chain.
func (st *chainStage) recordCommitted(txnID string, each func(add func(pos chainPosition, key int, data bool))) {
	st.mu.Lock()
	defer st.mu.Unlock()
	each(func(pos chainPosition, key int, data bool) {
		if prev, dup := st.positions[pos]; dup {
			st.run.fail("stage %d: input %s/%d@%d committed twice, by %s and then %s (exactly-once broken)", st.index, st.in, pos.partition, pos.offset, prev, txnID)
			return
		}
		st.positions[pos] = txnID
		if data {
			st.keyCount[key]++
			st.consumed++
		}
	})
	if st.consumed > st.run.spec.records {
		st.run.fail("stage %d committed %d records of %d produced", st.index, st.consumed, st.run.spec.records)
	}
}

// leaveStatic removes a static member that quit, as an operator's admin
// call would: a closing static member does not leave by itself, and its
// partitions would wait for its session to time out.
func (st *chainStage) leaveStatic(instanceID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.run.spec.seeds()...))
	if err != nil {
		return
	}
	defer cl.Close()
	if !st.run.flavour.kip848 {
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = st.group
		m := kmsg.NewLeaveGroupRequestMember()
		m.InstanceID = &instanceID
		req.Members = append(req.Members, m)
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode != 0 && resp.ErrorCode != kerr.UnknownMemberID.Code {
			st.run.fail("stage %d: leave static member %s: %v", st.index, instanceID, kerr.ErrorForCode(resp.ErrorCode))
		}
		return
	}
	dreq := kmsg.NewPtrConsumerGroupDescribeRequest()
	dreq.Groups = []string{st.group}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		return
	}
	for _, g := range dresp.Groups {
		for _, m := range g.Members {
			if m.InstanceID == nil || *m.InstanceID != instanceID {
				continue
			}
			req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			req.Group, req.MemberID, req.InstanceID, req.MemberEpoch = st.group, m.MemberID, &instanceID, -1
			_, _ = req.RequestWith(ctx, cl) // the member may be gone already
		}
	}
}

// check verifies the chain once every stage is done: each stage committed
// every key exactly once, and a read_committed reader of the last topic
// reads each record exactly once and reaches the end of every partition
// (no transaction left open).
func (r *chainRun) check(ctx context.Context, adm *kadm.Client) {
	t := r.t
	t.Helper()
	for _, st := range r.stages {
		missing, twice := 0, 0
		for _, n := range st.keyCount {
			switch {
			case n == 0:
				missing++
			case n > 1:
				twice++
			}
		}
		if missing > 0 || twice > 0 {
			t.Errorf("%s stage %d: %d keys never committed, %d committed more than once", r.flavour.name, st.index, missing, twice)
		}
	}
	last := r.topics[len(r.topics)-1]
	counts, total := readChainOutput(t, r.spec, adm, ctx, last)
	bad := 0
	for key, n := range counts {
		if n != 1 {
			bad++
			if bad <= 5 {
				t.Errorf("%s: key %d is %d times in %s", r.flavour.name, key, n, last)
			}
		}
	}
	if total != r.spec.records || bad > 0 {
		t.Errorf("%s: %s holds %d committed records, %d keys not exactly once; %d were produced", r.flavour.name, last, total, bad, r.spec.records)
	}
}

// readChainOutput reads topic with read_committed from its start to its
// high watermark and counts each key. It fails the test if a partition's
// committed reads cannot reach the high watermark (a transaction left
// open pins the last stable offset).
func readChainOutput(t *testing.T, spec chainSpec, adm *kadm.Client, ctx context.Context, topic string) ([]int32, int) {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl := chainClient(t, spec,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	counts := make([]int32, spec.records)
	total := 0
	reached := map[int32]int64{}
	behind := func() []int32 {
		var out []int32
		for p, end := range want {
			if reached[p] < end {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	readCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for len(behind()) > 0 {
		fs := cl.PollFetches(readCtx)
		if readCtx.Err() != nil {
			t.Fatalf("read_committed reads of %s stop short of the high watermark on partitions %v (reached %v, high watermarks %v): a transaction stays open", topic, behind(), reached, want)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			reached[rec.Partition] = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			key, err := strconv.Atoi(string(rec.Key))
			if err != nil || key < 0 || key >= spec.records {
				t.Errorf("%s/%d@%d: key %q was never produced", topic, rec.Partition, rec.Offset, rec.Key)
				return
			}
			counts[key]++
			total++
		})
	}
	return counts, total
}

// TestClusterTxnChain runs the copy chain on three brokers (RF 3, min ISR
// 2, internal topics at RF 3), where the group and transaction coordinators
// of the members are spread over the brokers, and SIGKILLs the broker
// coordinating the first chain's first group once a third of the records
// are copied, restarting it five seconds later. Every chain must still end
// with exactly the records produced.
func TestClusterTxnChain(t *testing.T) {
	c := StartCluster(t, 3, append(slices.Clone(clusterOverrides),
		"transaction.abort.timed.out.transaction.cleanup.interval.ms=1000")...)
	// The Kafka ports survive a restart, so the seeds are fixed.
	seeds := c.Addrs()
	spec := chainSpec{
		records:    30000,
		partitions: 6,
		stages:     2,
		rf:         3,
		seeds:      func() []string { return seeds },
		churnEvery: 3 * time.Second,
	}
	flavours := chainFlavours
	adm := c.Admin()
	ctx := testCtx(t, 30*time.Second)
	group := fmt.Sprintf("chain-%s-stage0", flavours[0].name)
	midRun := func() {
		groupCoord := coordinatorOf(ctx, t, adm, "group", group)
		txnCoords := map[int32]int{}
		for i := 1; i <= 10; i++ {
			txnCoords[coordinatorOf(ctx, t, adm, "transaction", fmt.Sprintf("%s-m%d", group, i))]++
		}
		t.Logf("group %s is coordinated by node %d, its members' transactions by nodes %v", group, groupCoord, txnCoords)
		if len(txnCoords) < 2 && txnCoords[groupCoord] > 0 {
			t.Errorf("every transaction of group %s is coordinated by its group coordinator %d: the coordinators were meant to be spread", group, groupCoord)
		}
		t.Logf("SIGKILL node %d mid-run", groupCoord)
		nd := c.Node(groupCoord)
		nd.Kill()
		time.Sleep(5 * time.Second) // the node stays down while the chains run on
		nd.Restart()
		t.Logf("node %d restarted", groupCoord)
	}
	runChains(t, spec, flavours, 8*time.Minute, midRun)
}

// coordinatorOf asks which broker coordinates a group or transactional ID.
func coordinatorOf(ctx context.Context, t *testing.T, adm *kadm.Client, kind, key string) int32 {
	t.Helper()
	var resp kadm.FindCoordinatorResponses
	if kind == "group" {
		resp = adm.FindGroupCoordinators(ctx, key)
	} else {
		resp = adm.FindTxnCoordinators(ctx, key)
	}
	id := int32(-1)
	resp.Each(func(r kadm.FindCoordinatorResponse) {
		if r.Err != nil {
			t.Fatalf("find %s coordinator of %s: %v", kind, key, r.Err)
		}
		id = r.NodeID
	})
	return id
}

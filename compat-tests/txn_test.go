package compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnOverrides are the broker settings every transaction test starts with.
// A single broker holds one replica of each internal topic; five partitions
// of each keep their creation fast; a one-second abort check lets a test
// watch the coordinator time a transaction out within seconds rather than
// Kafka's default ten.
var txnOverrides = []string{
	"offsets.topic.replication.factor=1",
	"offsets.topic.num.partitions=5",
	"transaction.state.log.replication.factor=1",
	"transaction.state.log.min.isr=1",
	"transaction.state.log.num.partitions=5",
	"group.initial.rebalance.delay.ms=0",
	"group.min.session.timeout.ms=500",
	fmt.Sprintf("transaction.abort.timed.out.transaction.cleanup.interval.ms=%d", txnCleanupInterval.Milliseconds()),
}

// txnCleanupInterval is how often the coordinator looks for timed-out
// transactions in these tests.
const txnCleanupInterval = time.Second

// txnTimeout is the transaction timeout the test producers ask for: short,
// so an abandoned transaction is aborted by the coordinator within a test.
const txnTimeout = 10 * time.Second

// sentinelPrefix marks the end-of-read records readVisible appends.
const sentinelPrefix = "__compat_end__"

// startTxnBroker starts a broker with txnOverrides plus extra.
func startTxnBroker(t *testing.T, extra ...string) *Broker {
	t.Helper()
	return StartBroker(t, append(slices.Clone(txnOverrides), extra...)...)
}

// followBroker makes a franz-go client dial whatever address the broker
// currently serves on, whatever address it was asked for: a restarted
// broker may listen on a new port, and clients that live across a kill must
// reach it there. A single-broker cluster makes this exact.
func followBroker(b *Broker) kgo.Opt {
	var d net.Dialer
	return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		addr := b.Addr()
		if addr == "" {
			return nil, errors.New("broker restarting")
		}
		return d.DialContext(ctx, network, addr)
	})
}

// newTxnClient is a franz-go client with a transactional ID and the short
// test transaction timeout.
func newTxnClient(t *testing.T, b *Broker, txnID string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	return newClient(t, b, append(base, opts...)...)
}

// runTxn begins a transaction on cl, produces recs synchronously and ends it
// with commit or abort. The first error is returned with its step.
func runTxn(ctx context.Context, cl *kgo.Client, commit bool, recs ...*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		return fmt.Errorf("end (commit=%v): %w", commit, err)
	}
	return nil
}

// valueRecords builds one record per value for topic/partition.
func valueRecords(topic string, partition int32, values ...string) []*kgo.Record {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v)}
	}
	return recs
}

// seqValues is prefix-0 … prefix-(n-1).
func seqValues(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// appendEndMarkers appends one unique marker record to each partition
// 0..parts-1 of topic with a plain producer and returns the marker and the
// offset it got in each partition.
func appendEndMarkers(t *testing.T, b *Broker, topic string, parts int32) (string, map[int32]int64) {
	t.Helper()
	marker := fmt.Sprintf("%s%d", sentinelPrefix, time.Now().UnixNano())
	p := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), followBroker(b))
	defer p.Close()
	ends := make(map[int32]int64, parts)
	for part := range parts {
		r := &kgo.Record{Topic: topic, Partition: part, Value: []byte(marker)}
		if err := p.ProduceSync(testCtx(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatalf("append end marker to %s/%d: %v", topic, part, err)
		}
		ends[part] = r.Offset
	}
	return marker, ends
}

// readVisible reads every record of topic (partitions 0..parts-1) that a
// consumer with the given isolation level sees, up to an end marker this
// call appends to each partition with a plain producer. With read_committed
// the marker only becomes visible once every transaction begun before it
// has ended, so this also waits (up to d) for open transactions to be
// committed, aborted or timed out. The markers are left out of the result.
func readVisible(t *testing.T, b *Broker, topic string, parts int32, level kgo.IsolationLevel, d time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	end, ends := appendEndMarkers(t, b, topic, parts)
	offsets := make(map[int32]kgo.Offset, parts)
	for part := range ends {
		offsets[part] = kgo.NewOffset().AtStart()
	}
	cl := newClient(t, b,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(level),
		kgo.FetchMaxWait(300*time.Millisecond),
		followBroker(b),
	)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got := make(map[int32][]*kgo.Record, parts)
	done := map[int32]bool{}
	for len(done) < len(ends) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			var missing []string
			for part, off := range ends {
				if !done[part] {
					missing = append(missing, fmt.Sprintf("%d (marker at %d, %d records read)", part, off, len(got[part])))
				}
			}
			slices.Sort(missing)
			t.Fatalf("read %s: end marker not reached within %v on partitions %s (an open transaction holds the stable offset?)",
				topic, d, strings.Join(missing, ", "))
		}
		fs.EachError(func(tp string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("fetch %s/%d: %v", tp, part, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if done[r.Partition] {
				return
			}
			if string(r.Value) == end {
				if r.Offset != ends[r.Partition] {
					t.Errorf("%s/%d: end marker read at %d, appended at %d", topic, r.Partition, r.Offset, ends[r.Partition])
				}
				done[r.Partition] = true
				return
			}
			if strings.HasPrefix(string(r.Value), sentinelPrefix) {
				return // an earlier call's marker
			}
			got[r.Partition] = append(got[r.Partition], r)
		})
		if t.Failed() {
			t.FailNow()
		}
	}
	return got
}

// recordValues flattens records into their values.
func recordValues(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// isFenced reports whether err says the producer was fenced by a newer
// epoch, which Kafka signals with either code depending on the API.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// describeTxn describes one transactional ID and fails on any error.
func describeTxn(t *testing.T, adm *kadm.Client, id string) kadm.DescribedTransaction {
	t.Helper()
	ds, err := adm.DescribeTransactions(testCtx(t, 15*time.Second), id)
	if err != nil {
		t.Fatalf("describe transaction %s: %v", id, err)
	}
	d, ok := ds[id]
	if !ok {
		t.Fatalf("describe transaction %s: not in the response %v", id, ds)
	}
	if d.Err != nil {
		t.Fatalf("describe transaction %s: %v", id, d.Err)
	}
	return d
}

// waitTxnState polls DescribeTransactions until id is in one of states.
func waitTxnState(t *testing.T, adm *kadm.Client, id string, d time.Duration, states ...string) kadm.DescribedTransaction {
	t.Helper()
	var last kadm.DescribedTransaction
	waitFor(t, d, fmt.Sprintf("transaction %s in state %v", id, states), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return err
		}
		last = ds[id]
		if last.Err != nil {
			return last.Err
		}
		if !slices.Contains(states, last.State) {
			return fmt.Errorf("state %q", last.State)
		}
		return nil
	})
	return last
}

// TestTxnZombieFencing: producers share a transactional ID. Each time a
// newer one initialises, the older (now a zombie) can neither commit nor
// produce — PRODUCER_FENCED or INVALID_PRODUCER_EPOCH — and its open
// transaction is aborted: read_committed never sees its records, though
// read_uncommitted shows they were written.
func TestTxnZombieFencing(t *testing.T) {
	b := startTxnBroker(t)
	adm := newAdmin(t, b)
	const topic, id = "txn-fence", "fence-me"
	createTopic(t, adm, topic, 2, nil)
	ctx := testCtx(t, 60*time.Second)

	a := newTxnClient(t, b, id)
	if err := runTxn(ctx, a, true, valueRecords(topic, 0, seqValues("a-committed", 3)...)...); err != nil {
		t.Fatalf("first producer's first transaction: %v", err)
	}
	// A's open transaction, on both partitions, flushed to the log.
	if err := a.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	zombie := append(valueRecords(topic, 0, seqValues("zombie-p0", 3)...), valueRecords(topic, 1, seqValues("zombie-p1", 2)...)...)
	if err := a.ProduceSync(ctx, zombie...).FirstErr(); err != nil {
		t.Fatalf("produce before fencing: %v", err)
	}
	aPID, aEpoch, err := a.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := describeTxn(t, adm, id); d.State != "Ongoing" || d.ProducerID != aPID {
		t.Fatalf("before fencing: DescribeTransactions %+v, want Ongoing with producer %d", d, aPID)
	}

	// B initialises (its first produce runs InitProducerId): A's commit
	// is refused.
	bcl := newTxnClient(t, b, id)
	if err := bcl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := bcl.ProduceSync(ctx, valueRecords(topic, 0, "b-0")...).FirstErr(); err != nil {
		t.Fatalf("second producer's produce: %v", err)
	}
	bPID, bEpoch, err := bcl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bPID == aPID && bEpoch <= aEpoch {
		t.Errorf("second producer got producer %d epoch %d, not newer than the first's epoch %d", bPID, bEpoch, aEpoch)
	}
	if err := a.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Errorf("zombie committed after a newer producer initialised")
	} else if !isFenced(err) {
		t.Errorf("zombie's commit failed with %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}

	// C initialises while B's transaction is open: B's produce is refused.
	c := newTxnClient(t, b, id)
	if err := c.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := c.ProduceSync(ctx, valueRecords(topic, 1, "c-0")...).FirstErr(); err != nil {
		t.Fatalf("third producer's produce: %v", err)
	}
	if err := bcl.ProduceSync(ctx, valueRecords(topic, 1, "b-late")...).FirstErr(); err == nil {
		t.Errorf("zombie produced after a newer producer initialised")
	} else if !isFenced(err) {
		t.Errorf("zombie's produce failed with %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := c.ProduceSync(ctx, valueRecords(topic, 0, "c-1")...).FirstErr(); err != nil {
		t.Fatalf("third producer's second produce: %v", err)
	}
	if err := c.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("third producer's commit: %v", err)
	}
	cPID, _, _ := c.ProducerID(ctx)
	if d := waitTxnState(t, adm, id, 15*time.Second, "CompleteCommit"); d.ProducerID != cPID {
		t.Errorf("after the commit: DescribeTransactions producer %d, want %d", d.ProducerID, cPID)
	}

	committed := readVisible(t, b, topic, 2, kgo.ReadCommitted(), 30*time.Second)
	if got, want := recordValues(committed[0]), append(seqValues("a-committed", 3), "c-1"); !slices.Equal(got, want) {
		t.Errorf("read_committed %s/0 = %q, want %q", topic, got, want)
	}
	if got := recordValues(committed[1]); !slices.Equal(got, []string{"c-0"}) {
		t.Errorf("read_committed %s/1 = %q, want [c-0]", topic, got)
	}
	all := readVisible(t, b, topic, 2, kgo.ReadUncommitted(), 30*time.Second)
	want0 := slices.Concat(seqValues("a-committed", 3), seqValues("zombie-p0", 3), []string{"b-0", "c-1"})
	if got := recordValues(all[0]); !slices.Equal(got, want0) {
		t.Errorf("read_uncommitted %s/0 = %q, want %q (the zombies' records are in the log)", topic, got, want0)
	}
	if got, want := recordValues(all[1]), append(seqValues("zombie-p1", 2), "c-0"); !slices.Equal(got, want) {
		t.Errorf("read_uncommitted %s/1 = %q, want %q", topic, got, want)
	}
}

// metricsLine matches the broker's log line for its Prometheus listener.
var metricsLine = regexp.MustCompile(`msg="serving Prometheus metrics".*\baddr="?([0-9.]+:[0-9]+)"?`)

// metricValue scrapes the broker's /metrics and returns the value of an
// unlabelled metric.
func metricValue(ctx context.Context, addr, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not exposed", name)
}

// TestTxnTimeout: a producer begins a transaction, produces and stalls.
// After its timeout the coordinator aborts it: the last stable offset moves
// past it, so a read_committed consumer reads what was written after it; the
// broker logs a warning naming the transactional ID and counts it in
// kbroker_transactions_timed_out_total; the stalled producer, when it wakes,
// is fenced.
func TestTxnTimeout(t *testing.T) {
	// The metrics listener reports the port it bound in its log line, so
	// port 0 needs no pre-allocated "free" port.
	b := startTxnBroker(t, "kbroker.metrics.listener=127.0.0.1:0")
	var metricsAddr string
	waitFor(t, 10*time.Second, `broker logs its metrics address (msg="serving Prometheus metrics" addr=…)`, func() error {
		m := metricsLine.FindStringSubmatch(b.Stderr())
		if m == nil {
			return errors.New("no such log line")
		}
		metricsAddr = m[1]
		return nil
	})
	const metric = "kbroker_transactions_timed_out_total"
	before, err := metricValue(testCtx(t, 10*time.Second), metricsAddr, metric)
	if err != nil {
		t.Fatalf("scrape %s: %v", metric, err)
	}

	adm := newAdmin(t, b)
	const topic, id = "txn-stall", "stall-me"
	const timeout = 3 * time.Second
	createTopic(t, adm, topic, 1, nil)
	ctx := testCtx(t, 60*time.Second)
	plain := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := plain.ProduceSync(ctx, valueRecords(topic, 0, "before")...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	stall := newTxnClient(t, b, id, kgo.TransactionTimeout(timeout))
	if err := stall.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	stalled := valueRecords(topic, 0, seqValues("stalled", 4)...)
	began := time.Now()
	if err := stall.ProduceSync(ctx, stalled...).FirstErr(); err != nil {
		t.Fatalf("stalling producer's produce: %v", err)
	}
	if err := plain.ProduceSync(ctx, valueRecords(topic, 0, "after")...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// While it is open, the stable offset stays at its first record.
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup(topic, 0); time.Since(began) < timeout && o.Offset != stalled[0].Offset {
		t.Errorf("read_committed end offset %d (err %v) with the transaction open, want its first offset %d", o.Offset, o.Err, stalled[0].Offset)
	}
	if d := describeTxn(t, adm, id); d.State != "Ongoing" || d.TimeoutMillis != int32(timeout.Milliseconds()) {
		t.Errorf("open transaction described as %q with timeout %d ms, want Ongoing, %d ms", d.State, d.TimeoutMillis, timeout.Milliseconds())
	}

	// The consumer gets past it only once the coordinator aborts it.
	got := recordValues(readVisible(t, b, topic, 1, kgo.ReadCommitted(), 30*time.Second)[0])
	// The broker checks every cleanup interval (1 s here); allow slack
	// for a slow machine, but not Kafka's default 10 s interval.
	if waited, most := time.Since(began), timeout+txnCleanupInterval+4*time.Second; waited < timeout || waited > most {
		t.Errorf("read_committed passed the stalled transaction after %v; want between its %v timeout and %v "+
			"(transaction.abort.timed.out.transaction.cleanup.interval.ms=%d)", waited, timeout, most, txnCleanupInterval.Milliseconds())
	}
	if want := []string{"before", "after"}; !slices.Equal(got, want) {
		t.Errorf("read_committed %s/0 = %q, want %q", topic, got, want)
	}
	waitTxnState(t, adm, id, 10*time.Second, "CompleteAbort")
	lso, err = adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw := endOffsets(t, adm, topic)[0]
	if o, _ := lso.Lookup(topic, 0); o.Offset != hw {
		t.Errorf("after the abort: read_committed end offset %d, high watermark %d", o.Offset, hw)
	}

	warned := false
	for line := range strings.SplitSeq(b.Stderr(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "transactional_id="+id) {
			warned = true
			t.Logf("broker warning: %s", line)
			break
		}
	}
	if !warned {
		t.Errorf("broker logged no warning naming transactional_id=%s", id)
	}
	waitFor(t, 10*time.Second, metric+" counts the abort", func() error {
		v, err := metricValue(context.Background(), metricsAddr, metric)
		if err != nil {
			return err
		}
		if v < before+1 {
			return fmt.Errorf("%s = %v, was %v", metric, v, before)
		}
		return nil
	})

	// The stalled producer wakes up: its commit must not succeed.
	if err := stall.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Errorf("the timed-out transaction's producer committed after the coordinator aborted it")
	} else {
		t.Logf("stalled producer's commit after the timeout: %v", err)
	}
	got = recordValues(readVisible(t, b, topic, 1, kgo.ReadCommitted(), 30*time.Second)[0])
	if want := []string{"before", "after"}; !slices.Equal(got, want) {
		t.Errorf("read_committed %s/0 after the late commit = %q, want %q", topic, got, want)
	}
}

// TestTxnDescribe: the operator APIs through kadm. DescribeProducers shows
// an idempotent producer (ID, epoch, last sequence) and a transactional one
// with the first offset of its open transaction; ListTransactions and
// DescribeTransactions show the transaction Ongoing with its partitions and
// timeout, then CompleteCommit / CompleteAbort.
func TestTxnDescribe(t *testing.T) {
	b := startTxnBroker(t)
	adm := newAdmin(t, b)
	const topic = "txn-describe"
	createTopic(t, adm, topic, 2, nil)
	ctx := testCtx(t, 60*time.Second)

	idem := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 3 { // three batches: sequences 0, 1, 2
		if err := idem.ProduceSync(ctx, valueRecords(topic, 0, fmt.Sprintf("idem-%d", i))...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	idemPID, idemEpoch, err := idem.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tx := newTxnClient(t, b, "describe-me")
	if err := runTxn(ctx, tx, true, valueRecords(topic, 1, "warmup")...); err != nil {
		t.Fatal(err)
	}
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := valueRecords(topic, 1, seqValues("open", 2)...)
	if err := tx.ProduceSync(ctx, open...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txPID, txEpoch, err := tx.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	dp, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}}})
	if err != nil {
		t.Fatalf("DescribeProducers: %v", err)
	}
	parts := dp[topic].Partitions
	if p := parts[0]; p.Err != nil {
		t.Errorf("DescribeProducers %s/0: %v", topic, p.Err)
	} else if got, ok := p.ActiveProducers[idemPID]; !ok {
		t.Errorf("DescribeProducers %s/0: idempotent producer %d missing from %+v", topic, idemPID, p.ActiveProducers)
	} else if got.ProducerEpoch != idemEpoch || got.LastSequence != 2 || got.CurrentTxnStartOffset != -1 || got.LastTimestamp <= 0 {
		t.Errorf("DescribeProducers %s/0: %+v, want epoch %d, last sequence 2, no open transaction (-1), a timestamp", topic, got, idemEpoch)
	}
	if p := parts[1]; p.Err != nil {
		t.Errorf("DescribeProducers %s/1: %v", topic, p.Err)
	} else if got, ok := p.ActiveProducers[txPID]; !ok {
		t.Errorf("DescribeProducers %s/1: transactional producer %d missing from %+v", topic, txPID, p.ActiveProducers)
	} else if got.ProducerEpoch != txEpoch || got.CurrentTxnStartOffset != open[0].Offset {
		t.Errorf("DescribeProducers %s/1: %+v, want epoch %d, open transaction from offset %d", topic, got, txEpoch, open[0].Offset)
	}

	lt, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		t.Fatalf("ListTransactions: %v", err)
	}
	if l, ok := lt["describe-me"]; !ok || l.State != "Ongoing" || l.ProducerID != txPID {
		t.Errorf("ListTransactions: describe-me = %+v (present %v), want Ongoing, producer %d", l, ok, txPID)
	}
	lt, err = adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil {
		t.Fatalf("ListTransactions filtered: %v", err)
	}
	if _, ok := lt["describe-me"]; ok {
		t.Errorf("ListTransactions filtered to CompleteCommit lists the Ongoing describe-me: %+v", lt)
	}
	lt, err = adm.ListTransactions(ctx, []int64{txPID + 1000}, nil)
	if err != nil {
		t.Fatalf("ListTransactions by producer: %v", err)
	}
	if len(lt) != 0 {
		t.Errorf("ListTransactions filtered to an unknown producer ID lists %+v", lt)
	}
	d := describeTxn(t, adm, "describe-me")
	wantTopics := kadm.TopicsSet{topic: {1: {}}}
	if d.State != "Ongoing" || d.ProducerID != txPID || d.ProducerEpoch != txEpoch ||
		d.TimeoutMillis != int32(txnTimeout.Milliseconds()) || d.StartTimestamp <= 0 || fmt.Sprint(d.Topics.Sorted()) != fmt.Sprint(wantTopics.Sorted()) {
		t.Errorf("DescribeTransactions = %+v, want Ongoing, producer %d/%d, timeout %d, a start time, partitions %v",
			d, txPID, txEpoch, txnTimeout.Milliseconds(), wantTopics)
	}

	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	d = waitTxnState(t, adm, "describe-me", 15*time.Second, "CompleteCommit")
	if len(d.Topics) != 0 {
		t.Errorf("DescribeTransactions after commit lists partitions %v", d.Topics)
	}
	waitFor(t, 15*time.Second, "DescribeProducers shows no open transaction after the commit", func() error {
		dp, err := adm.DescribeProducers(context.Background(), kadm.TopicsSet{topic: {1: {}}})
		if err != nil {
			return err
		}
		if got := dp[topic].Partitions[1].ActiveProducers[txPID]; got.CurrentTxnStartOffset != -1 {
			return fmt.Errorf("producer %+v", got)
		}
		return nil
	})

	if err := runTxn(ctx, tx, false, valueRecords(topic, 1, "aborted")...); err != nil {
		t.Fatal(err)
	}
	waitTxnState(t, adm, "describe-me", 15*time.Second, "CompleteAbort")
	lt, err = adm.ListTransactions(ctx, nil, []string{"CompleteAbort"})
	if err != nil {
		t.Fatalf("ListTransactions filtered: %v", err)
	}
	if _, ok := lt["describe-me"]; !ok {
		t.Errorf("ListTransactions filtered to CompleteAbort misses describe-me: %+v", lt)
	}
}

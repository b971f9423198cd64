package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnOutcome is what a producer learned about one of its transactions.
type txnOutcome int

const (
	outcomeUnknown   txnOutcome = iota // the end was not confirmed: either is fine, but all or nothing
	outcomeCommitted                   // EndTxn(commit) succeeded: every record visible
	outcomeAborted                     // aborted by the producer or never ended: none visible
)

func (o txnOutcome) String() string {
	return [...]string{"unknown", "committed", "aborted"}[o]
}

// txnLedger records every transaction the crash test's producers ran.
type txnLedger struct {
	mu       sync.Mutex
	size     map[string]int // records per transaction
	outcome  map[string]txnOutcome
	commits  map[string]int // committed transactions per producer
	failures []string
}

func newTxnLedger() *txnLedger {
	return &txnLedger{size: map[string]int{}, outcome: map[string]txnOutcome{}, commits: map[string]int{}}
}

func (l *txnLedger) begin(txn string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.size[txn] = n
	l.outcome[txn] = outcomeUnknown
}

func (l *txnLedger) end(producer, txn string, o txnOutcome, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcome[txn] = o
	if o == outcomeCommitted {
		l.commits[producer]++
	}
	if err != nil {
		l.failures = append(l.failures, fmt.Sprintf("%s: %v", txn, err))
	}
}

func (l *txnLedger) committed(producer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits[producer]
}

// txnLoop runs transactions on one transactional ID until stop: six
// records over three partitions each, every fourth aborted on purpose. A
// transaction whose end is not confirmed is recorded as unknown, and the
// client is replaced: the new one's InitProducerId fences and aborts
// whatever the old one left open.
func txnLoop(b *Broker, ledger *txnLedger, topic, producer string, stop <-chan struct{}) error {
	newCl := func() (*kgo.Client, error) {
		return kgo.NewClient(
			kgo.SeedBrokers(b.Addr()),
			kgo.ClientID("compat-"+producer),
			kgo.TransactionalID(producer),
			kgo.TransactionTimeout(txnTimeout),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequestTimeoutOverhead(5*time.Second),
			kgo.RetryTimeout(30*time.Second),
			followBroker(b),
		)
	}
	cl, err := newCl()
	if err != nil {
		return err
	}
	defer func() { cl.Close() }()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		txn := fmt.Sprintf("%s-t%d", producer, n)
		commit := n%4 != 3
		recs := make([]*kgo.Record, 6)
		for k := range recs {
			recs[k] = &kgo.Record{Topic: topic, Partition: int32(k % 3), Value: fmt.Appendf(nil, "%s-r%d", txn, k)}
		}
		ledger.begin(txn, len(recs))
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		err := runTxn(ctx, cl, commit, recs...)
		cancel()
		switch {
		case err == nil && commit:
			ledger.end(producer, txn, outcomeCommitted, nil)
		case err == nil:
			ledger.end(producer, txn, outcomeAborted, nil)
		default:
			ledger.end(producer, txn, outcomeUnknown, err)
			cl.Close()
			if cl, err = newCl(); err != nil {
				return err
			}
		}
	}
}

// TestTxnBrokerKill: SIGKILL the broker while transactional producers run
// (some transactions just committed, some in flight, two left open by
// producers that never return), restart it on the same log directory, and
// require that every transaction ends committed or aborted — all of its
// records visible to read_committed or none, none stuck Ongoing once the
// transaction timeout has passed — and that an idempotent producer running
// across the kill stored every acknowledged record exactly once.
func TestTxnBrokerKill(t *testing.T) {
	const (
		txTopic, idTopic = "txn-crash", "idem-crash"
		loops            = 3
	)
	b := startTxnBroker(t)
	adm := kadm.NewClient(newClient(t, b, followBroker(b))) // lives across the restart
	createTopic(t, adm, txTopic, 3, nil)
	createTopic(t, adm, idTopic, 2, nil)
	ctx := testCtx(t, 3*time.Minute)
	ledger := newTxnLedger()

	// Two producers that begin a transaction, write to every partition and
	// are never heard from again: only the coordinator's timeout, which
	// must survive the restart, can end them.
	var holders []string
	for i := range 2 {
		id := fmt.Sprintf("hold-%d", i)
		holders = append(holders, id)
		cl := newTxnClient(t, b, id, followBroker(b))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for p := range int32(3) {
			recs = append(recs, &kgo.Record{Topic: txTopic, Partition: p, Value: fmt.Appendf(nil, "%s-t0-r%d", id, p)})
		}
		ledger.begin(id+"-t0", len(recs))
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("holder %s: %v", id, err)
		}
		ledger.end(id, id+"-t0", outcomeAborted, nil)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	loopErrs := make(chan error, loops)
	var producers []string
	for i := range loops {
		id := fmt.Sprintf("loop-%d", i)
		producers = append(producers, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := txnLoop(b, ledger, txTopic, id, stop); err != nil {
				loopErrs <- fmt.Errorf("%s: %w", id, err)
			}
		}()
	}
	idem := startIdemProducer(t, b, idTopic, 2)

	waitProgress := func(what string, minCommits map[string]int, minAcked int) {
		t.Helper()
		waitFor(t, 90*time.Second, what, func() error {
			for _, id := range producers {
				if n := ledger.committed(id); n < minCommits[id] {
					return fmt.Errorf("%s committed %d transactions", id, n)
				}
			}
			if n := idem.ackedCount(); n < minAcked {
				return fmt.Errorf("%d idempotent records acknowledged", n)
			}
			return nil
		})
	}
	want := map[string]int{}
	for _, id := range producers {
		want[id] = 5
	}
	waitProgress("transactions committed before the kill", want, 3000)
	b.Kill()
	before := map[string]int{}
	for _, id := range producers {
		before[id] = ledger.committed(id)
		want[id] = before[id] + 3
	}
	ackedBefore := idem.ackedCount()
	t.Logf("SIGKILL after commits %v and %d idempotent acks", before, ackedBefore)
	b.Restart()
	waitProgress("transactions committed after the restart", want, ackedBefore+2000)
	close(stop)
	wg.Wait()
	close(loopErrs)
	for err := range loopErrs {
		t.Errorf("transaction loop: %v", err)
	}
	idem.stop(t)

	// None stuck: every transactional ID reaches a complete state once the
	// holders' timeout has passed (10 s from their start, across the kill).
	waitFor(t, 40*time.Second, "no transaction left Ongoing or Prepare*", func() error {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lt, err := adm.ListTransactions(c, nil, nil)
		if err != nil {
			return err
		}
		var open []string
		for _, id := range append(slices.Clone(producers), holders...) {
			l, ok := lt[id]
			if !ok {
				return fmt.Errorf("%s not listed", id)
			}
			if l.State != "Empty" && !strings.HasPrefix(l.State, "Complete") {
				open = append(open, id+"="+l.State)
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("open: %v", open)
		}
		return nil
	})
	for _, id := range holders {
		if d := describeTxn(t, adm, id); d.State != "CompleteAbort" {
			t.Errorf("abandoned transaction %s ended in state %s, want CompleteAbort", id, d.State)
		}
	}

	ledger.mu.Lock()
	t.Logf("%d transactions; %d ended with an error: %v", len(ledger.outcome), len(ledger.failures), firstN(ledger.failures, 5))
	ledger.mu.Unlock()
	checkTxnVisibility(t, ledger, readVisible(t, b, txTopic, 3, kgo.ReadCommitted(), 60*time.Second))
	idem.check(t, readVisible(t, b, idTopic, 2, kgo.ReadUncommitted(), 60*time.Second))
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// checkTxnVisibility requires each transaction's records all visible or
// none, all for committed ones, none for aborted ones, and no record twice.
func checkTxnVisibility(t *testing.T, ledger *txnLedger, recs map[int32][]*kgo.Record) {
	t.Helper()
	seen := map[string]string{}
	visible := map[string]int{}
	for part, rs := range recs {
		for _, r := range rs {
			v := string(r.Value)
			where := fmt.Sprintf("%d@%d", part, r.Offset)
			if prev, dup := seen[v]; dup {
				t.Errorf("record %s visible twice: %s and %s", v, prev, where)
				continue
			}
			seen[v] = where
			// Values are <transaction>-r<k>.
			i := strings.LastIndex(v, "-r")
			if i < 0 {
				t.Errorf("record %s at %s was written by no producer of this test", v, where)
				continue
			}
			visible[v[:i]]++
		}
	}
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	counts := map[txnOutcome]int{}
	for txn, o := range ledger.outcome {
		n, size := visible[txn], ledger.size[txn]
		delete(visible, txn)
		counts[o]++
		switch {
		case o == outcomeCommitted && n != size:
			t.Errorf("committed transaction %s: %d of its %d records visible", txn, n, size)
		case o == outcomeAborted && n != 0:
			t.Errorf("aborted transaction %s: %d of its %d records visible to read_committed", txn, n, size)
		case n != 0 && n != size:
			t.Errorf("transaction %s (end unconfirmed) half visible: %d of %d records", txn, n, size)
		}
	}
	for txn, n := range visible {
		t.Errorf("%d visible records of %s, a transaction nobody ran", n, txn)
	}
	t.Logf("transactions checked: %v", counts)
}

// idemProducer is an idempotent, non-transactional producer that keeps
// producing unique values until stopped, remembering what was acknowledged
// where.
type idemProducer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	acked map[string]ackedRecord
	errs  int
}

func startIdemProducer(t *testing.T, b *Broker, topic string, partitions int32) *idemProducer {
	t.Helper()
	ip := &idemProducer{done: make(chan struct{}), acked: map[string]ackedRecord{}}
	ip.cl = newClient(t, b,
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(2000),
		kgo.RecordDeliveryTimeout(60*time.Second),
		followBroker(b),
	)
	ctx, cancel := context.WithCancel(context.Background())
	ip.cancel = cancel
	go func() {
		defer close(ip.done)
		// About 5 000 records a second: enough to have batches in flight
		// at any moment, few enough to read back quickly.
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			if n%10 == 0 {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
			v := fmt.Sprintf("idem-%08d", n)
			ip.wg.Add(1)
			// Not ctx: stopping the loop must not fail buffered records.
			ip.cl.Produce(context.Background(), &kgo.Record{Partition: int32(n) % partitions, Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer ip.wg.Done()
				ip.mu.Lock()
				defer ip.mu.Unlock()
				if err != nil {
					ip.errs++
					return
				}
				ip.acked[v] = ackedRecord{r.Partition, r.Offset}
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-ip.done })
	return ip
}

func (ip *idemProducer) ackedCount() int {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return len(ip.acked)
}

// stop ends the produce loop and waits (bounded) until every record has
// been acknowledged or failed.
func (ip *idemProducer) stop(t *testing.T) {
	t.Helper()
	ip.cancel()
	<-ip.done
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ip.cl.Flush(ctx); err != nil {
		t.Fatalf("flush idempotent producer: %v", err)
	}
	waited := make(chan struct{})
	go func() { ip.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		t.Fatalf("idempotent produce promises still pending after flush")
	}
}

// check requires every acknowledged record at its acknowledged offset and
// no value stored twice (an idempotent retry across the restart must be
// recognised as a duplicate).
func (ip *idemProducer) check(t *testing.T, recs map[int32][]*kgo.Record) {
	t.Helper()
	ip.mu.Lock()
	defer ip.mu.Unlock()
	seen := map[string]ackedRecord{}
	stored := 0
	for part, rs := range recs {
		for _, r := range rs {
			v := string(r.Value)
			if prev, dup := seen[v]; dup {
				t.Errorf("idempotent record %s stored twice: %d@%d and %d@%d", v, prev.partition, prev.offset, part, r.Offset)
				continue
			}
			seen[v] = ackedRecord{part, r.Offset}
			stored++
		}
	}
	lost := 0
	for v, a := range ip.acked {
		if got, ok := seen[v]; !ok || got != a {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s at %d@%d; stored: %v (present %v)", v, a.partition, a.offset, got, ok)
			}
		}
	}
	t.Logf("idempotent producer: %d acknowledged, %d failed, %d stored", len(ip.acked), ip.errs, stored)
	if lost > 0 {
		t.Errorf("%d of %d acknowledged records missing or moved", lost, len(ip.acked))
	}
}

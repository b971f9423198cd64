package compat

// Coordinator failover across processes: a consumer group and a
// transactional copier keep working while their coordinator's broker is
// killed.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// copier is a franz-go GroupTransactSession copying every record of one
// topic to another, one transaction per poll, until stopped.
type copier struct {
	mu        sync.Mutex
	committed int // records in committed transactions
	endErrs   []error
	stop      chan struct{}
	done      chan struct{}
}

func startCopier(t *testing.T, c *Cluster, group, txnID, in, out string) *copier {
	t.Helper()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(c.Addrs()...),
		kgo.DialTimeout(2*time.Second),
		kgo.RequestTimeoutOverhead(5*time.Second),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.DefaultProduceTopic(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(6*time.Second),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.FetchMaxWait(300*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("new transact session: %v", err)
	}
	cp := &copier{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(cp.done)
		defer sess.Close()
		for {
			select {
			case <-cp.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			fs := sess.PollRecords(ctx, 200)
			cancel()
			if fs.NumRecords() == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				cp.mu.Lock()
				cp.endErrs = append(cp.endErrs, fmt.Errorf("begin: %w", err))
				cp.mu.Unlock()
				return
			}
			promise := kgo.AbortingFirstErrPromise(sess.Client())
			n := 0
			fs.EachRecord(func(r *kgo.Record) {
				n++
				sess.Produce(context.Background(), &kgo.Record{Key: r.Key, Value: r.Value}, promise.Promise())
			})
			produceErr := promise.Err()
			ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
			committed, err := sess.End(ctx, produceErr == nil)
			cancel()
			cp.mu.Lock()
			if committed {
				cp.committed += n
			}
			if err != nil {
				cp.endErrs = append(cp.endErrs, fmt.Errorf("end transaction (produce error %v): %w", produceErr, err))
			}
			cp.mu.Unlock()
		}
	}()
	return cp
}

func (cp *copier) committedCount() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.committed
}

// TestClusterCoordinatorFailover: a GroupTransactSession copier (a consumer
// group plus a transactional producer, internal topics at RF 3) copies a
// topic while the broker of its group coordinator and then of its
// transaction coordinator is SIGKILLed and restarted; read_committed sees
// every source record exactly once in the output.
func TestClusterCoordinatorFailover(t *testing.T) {
	const in, out, group, txnID, parts = "cin", "cout", "copiers", "copier-1", int32(3)
	const perBatch = 600
	c := StartCluster(t, 3, clusterOverrides...)
	c.CreateTopic(in, parts, nil)
	c.CreateTopic(out, parts, nil)
	ctx := testCtx(t, 120*time.Second)
	src := c.Client(kgo.DefaultProduceTopic(in), kgo.RequiredAcks(kgo.AllISRAcks()))
	next := 0
	produce := func() {
		t.Helper()
		var recs []*kgo.Record
		for i := 0; i < perBatch; i++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", next%17), Value: fmt.Appendf(nil, "%d", next)})
			next++
		}
		if err := src.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce source records: %v", err)
		}
	}
	produce()
	cp := startCopier(t, c, group, txnID, in, out)
	t.Cleanup(func() {
		select {
		case <-cp.stop:
		default:
			close(cp.stop)
		}
		<-cp.done
	})
	waitCopied := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() error {
			if n := cp.committedCount(); n < next {
				return fmt.Errorf("%d of %d records copied in committed transactions", n, next)
			}
			return nil
		})
	}
	waitCopied("the copier copies the first batch")

	adm := c.Admin()
	killed := map[int32]bool{}
	for _, kind := range []string{"group", "transaction"} {
		key := group
		if kind == "transaction" {
			key = txnID
		}
		id := coordinatorOf(ctx, t, adm, kind, key)
		if killed[id] {
			t.Logf("the %s coordinator is node %d again, killed already", kind, id)
			continue
		}
		killed[id] = true
		t.Logf("SIGKILL node %d, the %s coordinator", id, kind)
		c.Node(id).Kill()
		produce()
		waitCopied(fmt.Sprintf("the copier carries on with the %s coordinator's node %d dead", kind, id))
		c.Node(id).Restart()
		c.WaitFullISR(in, 30*time.Second)
		c.WaitFullISR(out, 30*time.Second)
		produce()
		waitCopied(fmt.Sprintf("the copier carries on after node %d restarted", id))
		adm = c.Admin()
	}
	close(cp.stop)
	<-cp.done
	cp.mu.Lock()
	for _, err := range cp.endErrs {
		t.Errorf("copier: %v", err)
	}
	cp.mu.Unlock()

	// Every source record exactly once in the committed output.
	cons := c.Client(kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := make(map[string]int)
	for total := 0; total < next; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d copied records", total, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			total++
		})
	}
	// Anything beyond would be a duplicate: a short extra poll.
	extra, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	cons.PollFetches(extra).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	cancel()
	for i := 0; i < next; i++ {
		if n := seen[fmt.Sprint(i)]; n != 1 {
			t.Errorf("source record %d copied %d times", i, n)
		}
	}
}

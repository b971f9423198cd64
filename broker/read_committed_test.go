package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker/config"
)

// TestReadCommittedNeverSeesAbortedRecords races transactions that end in
// aborts against read_committed consumers tailing the same partition. A
// fetch that bounded its data by one last stable offset and its aborted
// transactions by an older one handed the records of a transaction aborted
// in between to the consumer as committed (issue 9: a copy chain counted
// more records than its input held). Safety: no consumer sees a record of
// an aborted transaction. Liveness: every consumer reaches every committed
// record.
func TestReadCommittedNeverSeesAbortedRecords(t *testing.T) {
	const (
		topic     = "rc-aborts"
		producers = 4
		consumers = 3
	)
	runFor := 6 * time.Second
	if testing.Short() {
		runFor = 2 * time.Second
	}
	b := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.TransactionStateLogReplicationFactor = 1
		c.TransactionStateLogNumPartitions = 1
		c.TransactionStateLogMinIsr = 1
	})
	admin := newClient(t, b.addr)
	createTopic(t, admin, topic, 1, nil)

	ctx, cancel := context.WithTimeout(context.Background(), runFor+90*time.Second)
	defer cancel()

	var (
		committed   atomic.Int64 // records in committed transactions
		abortedSeen atomic.Int64
		firstBad    sync.Once
		badRecord   string
		seen        = make([]atomic.Int64, consumers)
		stopProduce = make(chan struct{})
		producing   sync.WaitGroup
		consuming   sync.WaitGroup
	)
	for i := range producers {
		cl := newClient(t, b.addr,
			kgo.TransactionalID(fmt.Sprintf("rc-producer-%d", i)),
			kgo.DefaultProduceTopic(topic),
			kgo.ProducerLinger(0),
		)
		producing.Add(1)
		go func() {
			defer producing.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for txn := 0; ; txn++ {
				select {
				case <-stopProduce:
					return
				default:
				}
				commit := rng.IntN(2) == 0
				outcome := "abort"
				if commit {
					outcome = "commit"
				}
				if err := cl.BeginTransaction(); err != nil {
					t.Errorf("producer %d: begin: %v", i, err)
					return
				}
				n := 1 + rng.IntN(4)
				for r := range n {
					// One batch per record, so a transaction spans
					// several batches interleaved with the others'.
					v := fmt.Sprintf("%s p%d t%d r%d", outcome, i, txn, r)
					if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
						t.Errorf("producer %d: produce: %v", i, err)
						return
					}
				}
				if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					t.Errorf("producer %d: end transaction: %v", i, err)
					return
				}
				if commit {
					committed.Add(int64(n))
				}
			}
		}()
	}
	for i := range consumers {
		cl := newClient(t, b.addr,
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(20*time.Millisecond),
		)
		consuming.Add(1)
		go func() {
			defer consuming.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					seen[i].Add(1)
					if !strings.HasPrefix(string(r.Value), "commit") {
						abortedSeen.Add(1)
						firstBad.Do(func() { badRecord = fmt.Sprintf("%q at offset %d", r.Value, r.Offset) })
					}
				})
			}
		}()
	}

	time.Sleep(runFor) // the workload's length, not a synchronisation
	close(stopProduce)
	producing.Wait()
	want := committed.Load()
	waitUntil(t, 60*time.Second, "every consumer reads every committed record", func() bool {
		for i := range seen {
			if seen[i].Load() < want {
				return false
			}
		}
		return true
	})
	cancel()
	consuming.Wait()
	if n := abortedSeen.Load(); n > 0 {
		t.Fatalf("read_committed consumers saw %d records of aborted transactions, first %s", n, badRecord)
	}
	for i := range seen {
		if got := seen[i].Load(); got != want {
			t.Errorf("consumer %d read %d records, %d were committed", i, got, want)
		}
	}
	if want == 0 {
		t.Fatal("no transaction committed: the workload did not run")
	}
	t.Logf("%d committed records, each read by %d read_committed consumers", want, consumers)
}

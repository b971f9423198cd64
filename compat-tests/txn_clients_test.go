package compat

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// saramaTxnConfig is Sarama's transactional producer configuration: an
// idempotent producer with one request in flight, acks=all, a protocol
// version with transactions (>= 2.5, here 4.0), and the short test
// transaction timeout.
func saramaTxnConfig(txnID string) *sarama.Config {
	cfg := saramaConfig(sarama.CompressionNone)
	cfg.ClientID = "compat-sarama-txn"
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Transaction.Timeout = txnTimeout
	cfg.Net.MaxOpenRequests = 1
	return cfg
}

// saramaTxn runs one transaction on a Sarama SyncProducer.
func saramaTxn(t *testing.T, p sarama.SyncProducer, topic string, commit bool, values map[int32][]string) {
	t.Helper()
	if err := p.BeginTxn(); err != nil {
		t.Fatalf("sarama BeginTxn: %v", err)
	}
	var msgs []*sarama.ProducerMessage
	for part, vs := range values {
		for _, v := range vs {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: part, Value: sarama.StringEncoder(v)})
		}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama SendMessages in a transaction: %v", err)
	}
	if p.TxnStatus()&sarama.ProducerTxnFlagInTransaction == 0 {
		t.Errorf("sarama transaction status %v after sending, want in transaction", p.TxnStatus())
	}
	end, name := p.CommitTxn, "CommitTxn"
	if !commit {
		end, name = p.AbortTxn, "AbortTxn"
	}
	if err := end(); err != nil {
		t.Fatalf("sarama %s: %v", name, err)
	}
}

// saramaRead reads partitions 0..parts-1 of topic with a Sarama consumer at
// the given isolation level, up to the end marker appendEndMarkers wrote.
func saramaRead(t *testing.T, b *Broker, topic string, parts int32, level sarama.IsolationLevel) map[int32][]string {
	t.Helper()
	marker, ends := appendEndMarkers(t, b, topic, parts)
	cfg := saramaConfig(sarama.CompressionNone)
	cfg.Consumer.IsolationLevel = level
	cfg.Consumer.MaxWaitTime = 300 * time.Millisecond
	c, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer c.Close()
	out := map[int32][]string{}
	deadline := time.After(30 * time.Second)
	for part := range parts {
		pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("sarama ConsumePartition %s/%d: %v", topic, part, err)
		}
	read:
		for {
			select {
			case m := <-pc.Messages():
				v := string(m.Value)
				if v == marker {
					if m.Offset != ends[part] {
						t.Errorf("sarama %s/%d: end marker at %d, appended at %d", topic, part, m.Offset, ends[part])
					}
					break read
				}
				if !strings.HasPrefix(v, sentinelPrefix) {
					out[part] = append(out[part], v)
				}
			case err := <-pc.Errors():
				t.Fatalf("sarama consume %s/%d: %v", topic, part, err)
			case <-deadline:
				t.Fatalf("sarama consume %s/%d: end marker not reached in 30s; read %q", topic, part, out[part])
			}
		}
		pc.Close()
	}
	return out
}

// TestTxnSarama: Sarama's transactional producer commits one transaction,
// aborts the next and commits a third; Sarama's read_committed consumer
// sees only the committed records, its read_uncommitted consumer all.
func TestTxnSarama(t *testing.T) {
	b := startTxnBroker(t)
	const topic = "txn-sarama"
	createTopic(t, newAdmin(t, b), topic, 2, nil)
	p, err := sarama.NewSyncProducer([]string{b.Addr()}, saramaTxnConfig("sarama-txn"))
	if err != nil {
		t.Fatalf("sarama transactional producer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if !p.IsTransactional() {
		t.Fatalf("sarama producer is not transactional")
	}
	c1 := map[int32][]string{0: seqValues("c1-p0", 4), 1: seqValues("c1-p1", 3)}
	ab := map[int32][]string{0: seqValues("ab-p0", 3), 1: seqValues("ab-p1", 5)}
	c2 := map[int32][]string{0: seqValues("c2-p0", 2), 1: seqValues("c2-p1", 2)}
	saramaTxn(t, p, topic, true, c1)
	saramaTxn(t, p, topic, false, ab)
	saramaTxn(t, p, topic, true, c2)
	waitTxnState(t, newAdmin(t, b), "sarama-txn", 15*time.Second, "CompleteCommit")

	committed := saramaRead(t, b, topic, 2, sarama.ReadCommitted)
	all := saramaRead(t, b, topic, 2, sarama.ReadUncommitted)
	for part := range int32(2) {
		if got, want := committed[part], slices.Concat(c1[part], c2[part]); !slices.Equal(got, want) {
			t.Errorf("sarama read_committed %s/%d = %q, want %q", topic, part, got, want)
		}
		if got, want := all[part], slices.Concat(c1[part], ab[part], c2[part]); !slices.Equal(got, want) {
			t.Errorf("sarama read_uncommitted %s/%d = %q, want %q", topic, part, got, want)
		}
	}
	// franz-go agrees.
	if got, want := recordValues(readVisible(t, b, topic, 2, kgo.ReadCommitted(), 30*time.Second)[1]), slices.Concat(c1[1], c2[1]); !slices.Equal(got, want) {
		t.Errorf("franz-go read_committed %s/1 = %q, want %q", topic, got, want)
	}
}

// TestTxnKcat: librdkafka (kcat) with isolation.level=read_committed sees
// only committed records and stops at the last stable offset while a
// transaction is open; with read_uncommitted it sees everything. The
// transactions come from franz-go.
func TestTxnKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	b := startTxnBroker(t)
	const topic = "txn-kcat"
	createTopic(t, newAdmin(t, b), topic, 1, nil)
	ctx := testCtx(t, 60*time.Second)
	cl := newTxnClient(t, b, "kcat-txn")
	a, ab, c, open := seqValues("commit-a", 5), seqValues("abort-b", 4), seqValues("commit-c", 3), seqValues("open-d", 2)
	if err := runTxn(ctx, cl, true, valueRecords(topic, 0, a...)...); err != nil {
		t.Fatal(err)
	}
	if err := runTxn(ctx, cl, false, valueRecords(topic, 0, ab...)...); err != nil {
		t.Fatal(err)
	}
	if err := runTxn(ctx, cl, true, valueRecords(topic, 0, c...)...); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, valueRecords(topic, 0, open...)...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	read := func(level string) []string {
		t.Helper()
		out := runKcat(t, kcat, "", "-b", b.Addr(), "-X", "broker.address.family=v4", "-X", "isolation.level="+level,
			"-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", `%s\n`)
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}
	if got, want := read("read_committed"), slices.Concat(a, c); !slices.Equal(got, want) {
		t.Errorf("kcat read_committed with a transaction open = %q, want %q", got, want)
	}
	if got, want := read("read_uncommitted"), slices.Concat(a, ab, c, open); !slices.Equal(got, want) {
		t.Errorf("kcat read_uncommitted = %q, want %q", got, want)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitTxnState(t, newAdmin(t, b), "kcat-txn", 15*time.Second, "CompleteCommit")
	// The commit marker lands after the HW the client's commit waited for
	// only once the coordinator wrote it; CompleteCommit says it has.
	if got, want := read("read_committed"), slices.Concat(a, c, open); !slices.Equal(got, want) {
		t.Errorf("kcat read_committed after the last commit = %q, want %q", got, want)
	}
}

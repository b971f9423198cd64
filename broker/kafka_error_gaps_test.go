package broker

// Gaps of compat-tests/ERRORS.md closed against Kafka 4.x: OffsetFetch v10
// unknown topic IDs, ListTransactions v2 invalid patterns, InitProducerId
// without a producer ID block, AddOffsetsToTxn while __consumer_offsets
// cannot be created. Each is driven through the wire against an
// in-process broker.

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/coordinator/group"
)

// TestOffsetFetchV10UnknownTopicID: an OffsetFetch v10 naming a topic ID
// that names no topic (a random one, or the zero ID) answers
// UNKNOWN_TOPIC_ID with offset -1 for each partition asked, the ID echoed,
// after the coordinator's topics — for a group with commits and for one
// without — as Kafka 4.1's KafkaApis.fetchOffsetsForGroup does. The known
// topic is answered as before.
func TestOffsetFetchV10UnknownTopicID(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneGroupCoordinatorPartition)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "oft", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	coordinatorOf(ctx, t, adm, "oft-group")
	offsets := make(kadm.Offsets)
	offsets.Add(kadm.Offset{Topic: "oft", Partition: 0, At: 42, LeaderEpoch: -1})
	if resps, err := adm.CommitOffsets(ctx, "oft-group", offsets); err != nil || resps.Error() != nil {
		t.Fatalf("commit: %v %v", err, resps.Error())
	}
	known := tb.view.Image().Topics["oft"].ID
	var unknown [16]byte
	rand.Read(unknown[:])

	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(10)
	topic := func(id [16]byte, partitions ...int32) kmsg.OffsetFetchRequestGroupTopic {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.TopicID, rt.Partitions = id, partitions
		return rt
	}
	g1 := kmsg.NewOffsetFetchRequestGroup()
	g1.Group = "oft-group"
	g1.Topics = []kmsg.OffsetFetchRequestGroupTopic{topic(unknown, 1, 2), topic(known, 0, 1), topic([16]byte{}, 0)}
	g2 := kmsg.NewOffsetFetchRequestGroup()
	g2.Group = "oft-no-commits"
	g2.Topics = []kmsg.OffsetFetchRequestGroupTopic{topic(unknown, 0)}
	req.Groups = []kmsg.OffsetFetchRequestGroup{g1, g2}
	resp := rawRequest(t, cl, req).(*kmsg.OffsetFetchResponse)
	if len(resp.Groups) != 2 {
		t.Fatalf("%d groups answered, want 2", len(resp.Groups))
	}

	type part struct {
		partition int32
		offset    int64
		epoch     int32
		code      int16
	}
	check := func(what string, got kmsg.OffsetFetchResponseGroupTopic, id [16]byte, want ...part) {
		t.Helper()
		if got.TopicID != id {
			t.Errorf("%s: topic ID %x, want %x", what, got.TopicID, id)
		}
		var parts []part
		for _, p := range got.Partitions {
			parts = append(parts, part{p.Partition, p.Offset, p.LeaderEpoch, p.ErrorCode})
		}
		if !slices.Equal(parts, want) {
			t.Errorf("%s: partitions %+v, want %+v", what, parts, want)
		}
	}
	unknownID := kerr.UnknownTopicID.Code
	grp := resp.Groups[0]
	if grp.ErrorCode != 0 || len(grp.Topics) != 3 {
		t.Fatalf("group with commits: error %d, %d topics; want NONE and 3: %+v", grp.ErrorCode, len(grp.Topics), grp.Topics)
	}
	// The coordinator's topics first, then the unresolved ones in request
	// order.
	check("known topic", grp.Topics[0], known, part{0, 42, -1, 0}, part{1, -1, -1, 0})
	check("unknown topic ID", grp.Topics[1], unknown, part{1, -1, -1, unknownID}, part{2, -1, -1, unknownID})
	check("zero topic ID", grp.Topics[2], [16]byte{}, part{0, -1, -1, unknownID})
	grp = resp.Groups[1]
	if grp.ErrorCode != 0 || len(grp.Topics) != 1 {
		t.Fatalf("group without commits: error %d, %d topics; want NONE and 1: %+v", grp.ErrorCode, len(grp.Topics), grp.Topics)
	}
	check("unknown topic ID, group without commits", grp.Topics[0], unknown, part{0, -1, -1, unknownID})
}

// TestListTransactionsInvalidPattern: ListTransactions v2 with a
// transactional_id_pattern that does not compile answers
// INVALID_REGULAR_EXPRESSION with no transactions and no unknown state
// filters, as Kafka's listTransactionStates throws
// InvalidRegularExpression — also before this broker coordinates any
// transaction. kbroker compiles RE2: a lookahead (valid Java) is refused
// too, and a pattern that only compiles once wrapped to match whole IDs
// is refused. Valid and empty patterns filter as before.
func TestListTransactionsInvalidPattern(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneTransactionCoordinatorPartition)
	cl := newClient(t, tb.addr)
	list := func(version int16, pattern *string, states ...string) *kmsg.ListTransactionsResponse {
		t.Helper()
		req := kmsg.NewPtrListTransactionsRequest()
		req.SetVersion(version)
		req.TransactionalIDPattern, req.StateFilters, req.DurationFilterMillis = pattern, states, -1
		return rawRequest(t, cl, req).(*kmsg.ListTransactionsResponse)
	}
	refused := func(what, pattern string) {
		t.Helper()
		resp := list(2, &pattern, "Bogus")
		wantErr(t, what, resp.ErrorCode, kerr.InvalidRegularExpression)
		if len(resp.TransactionStates) != 0 || len(resp.UnknownStateFilters) != 0 {
			t.Errorf("%s: transactions %+v, unknown filters %v; want none", what, resp.TransactionStates, resp.UnknownStateFilters)
		}
	}
	refused("no transaction coordinator yet", "(")

	createTopic(t, cl, "ltp", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer := newClient(t, tb.addr, kgo.TransactionalID("ltp-a"), kgo.DefaultProduceTopic("ltp"))
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.EndTransaction(context.Background(), kgo.TryAbort) })

	refused("unbalanced parenthesis", "ltp-(")
	refused("lookahead (Java, not RE2)", "(?=ltp).*")
	refused("backreference (Java, not RE2)", `(ltp)-\1`)
	refused("compiles only once wrapped", "x)|(ltp-a")

	ids := func(resp *kmsg.ListTransactionsResponse) []string {
		var out []string
		for _, s := range resp.TransactionStates {
			out = append(out, s.TransactionalID)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		version int16
		pattern *string
		want    []string
	}{
		{"matching pattern", 2, kmsg.StringPtr("ltp-.*"), []string{"ltp-a"}},
		{"pattern matches whole IDs only", 2, kmsg.StringPtr("ltp"), nil},
		{"empty pattern", 2, kmsg.StringPtr(""), []string{"ltp-a"}},
		{"null pattern", 2, nil, []string{"ltp-a"}},
		{"v1 has no pattern", 1, nil, []string{"ltp-a"}},
	} {
		resp := list(tc.version, tc.pattern)
		if resp.ErrorCode != 0 || !slices.Equal(ids(resp), tc.want) {
			t.Errorf("%s: error %d, transactions %v; want NONE and %v", tc.name, resp.ErrorCode, ids(resp), tc.want)
		}
	}
}

// holdProducerIDBlocks makes tb's producer ID reservations wait while
// held: hold starts holding, release lets the reservations waiting (and
// any later one) reach etcd. Requests wait at most 100ms for a block.
// Install it before the first producer ID is handed out.
func holdProducerIDBlocks(t *testing.T, tb *testBroker) (hold, release func()) {
	t.Helper()
	var mu sync.Mutex
	gate := make(chan struct{})
	close(gate) // not held
	a := tb.producerIDs
	a.mu.Lock()
	reserve := a.mu.reserve
	a.mu.reserve = func(ctx context.Context, size int64) (int64, error) {
		mu.Lock()
		g := gate
		mu.Unlock()
		select {
		case <-g:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return reserve(ctx, size)
	}
	a.mu.wait = 100 * time.Millisecond
	a.mu.Unlock()
	held := false
	hold = func() {
		mu.Lock()
		defer mu.Unlock()
		if !held {
			gate, held = make(chan struct{}), true
		}
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		if held {
			close(gate)
			held = false
		}
	}
	t.Cleanup(release)
	return hold, release
}

// exhaustProducerIDs makes tb's allocator have no producer ID at hand, as
// after its block is used up.
func exhaustProducerIDs(tb *testBroker) {
	a := tb.producerIDs
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.next, a.mu.reserved = a.mu.end, -1
}

// TestInitProducerIDWithoutProducerIDBlock: with no producer ID block at
// hand (its reservation in etcd not answering), InitProducerId answers
// COORDINATOR_LOAD_IN_PROGRESS for an idempotent producer and for a new
// transactional ID, as Kafka's RPCProducerIdManager does while it fetches
// a block, at every version; a transactional ID that only needs its epoch
// bumped is served. Once the reservation completes, a retry gets an ID and
// a real idempotent producer produces.
func TestInitProducerIDWithoutProducerIDBlock(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneTransactionCoordinatorPartition)
	hold, release := holdProducerIDBlocks(t, tb)
	cl := newClient(t, tb.addr)
	old := newV1Producer(t, cl, cl, "pid-old") // takes an ID of the first block

	hold()
	exhaustProducerIDs(tb)
	init := func(version int16, txnID *string) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(version)
		req.TransactionalID, req.TransactionTimeoutMillis = txnID, 60000
		return rawRequest(t, cl, req).(*kmsg.InitProducerIDResponse)
	}
	for v := int16(0); v <= 5; v++ {
		resp := init(v, nil)
		wantErr(t, "idempotent producer, no block", resp.ErrorCode, kerr.CoordinatorLoadInProgress)
		if resp.ProducerID != -1 || resp.ProducerEpoch != -1 {
			t.Errorf("v%d idempotent producer, no block: producer %d epoch %d, want -1 -1", v, resp.ProducerID, resp.ProducerEpoch)
		}
		wantErr(t, "new transactional ID, no block", init(v, kmsg.StringPtr("pid-new")).ErrorCode, kerr.CoordinatorLoadInProgress)
	}
	if resp := init(4, kmsg.StringPtr("pid-old")); resp.ErrorCode != 0 || resp.ProducerID != old.pid || resp.ProducerEpoch != old.epoch+1 {
		t.Errorf("epoch bump without a block: %+v, want producer %d epoch %d", resp, old.pid, old.epoch+1)
	}

	release()
	waitUntil(t, 10*time.Second, "InitProducerId gets the reserved block", func() bool {
		resp := init(4, nil)
		return resp.ErrorCode == 0 && resp.ProducerID >= 0
	})
	if resp := init(4, kmsg.StringPtr("pid-new")); resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Errorf("new transactional ID once the block is in: %+v", resp)
	}
	createTopic(t, cl, "pid-topic", 1, nil)
	producer := newClient(t, tb.addr, kgo.DefaultProduceTopic("pid-topic"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("idempotent produce: %v", err)
	}
}

// offsetsTopicUncreatable makes __consumer_offsets need more brokers than
// a one-broker cluster has.
func offsetsTopicUncreatable(c *config.Config) {
	c.OffsetsTopicReplicationFactor, c.OffsetsTopicNumPartitions = 3, 5
}

// TestAddOffsetsToTxnWithoutOffsetsTopic: AddOffsetsToTxn while
// __consumer_offsets cannot be created (replication factor above the live
// brokers) answers NONE, adding the partition the group hashes to under
// offsets.topic.num.partitions, as Kafka's KafkaApis does with
// GroupCoordinator.partitionFor; the producer's next step, finding the
// group's coordinator for TxnOffsetCommit, fails with
// COORDINATOR_NOT_AVAILABLE, and the transaction still aborts (the marker
// for the partition that does not exist is skipped).
func TestAddOffsetsToTxnWithoutOffsetsTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneTransactionCoordinatorPartition, offsetsTopicUncreatable)
	cl := newClient(t, tb.addr)
	p := newV1Producer(t, cl, cl, "ao-tx")
	const grp = "ao-group"
	for _, v := range []int16{0, 3} {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.SetVersion(v)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = p.id, p.pid, p.epoch, grp
		wantErr(t, "AddOffsetsToTxn", rawRequest(t, cl, req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode, noError)
	}
	describe := func() kmsg.DescribeTransactionsResponseTransactionState {
		t.Helper()
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{p.id}
		return rawRequest(t, cl, req).(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
	}
	d := describe()
	want := group.PartitionFor(grp, tb.cfg.OffsetsTopicNumPartitions)
	if d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics[0].Topic != offsetsTopic || !slices.Equal(d.Topics[0].Partitions, []int32{want}) {
		t.Fatalf("transaction after AddOffsetsToTxn: %+v, want Ongoing with %s-%d", d, offsetsTopic, want)
	}

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorKey = grp
	wantErr(t, "FindCoordinator for the group", rawRequest(t, cl, fc).(*kmsg.FindCoordinatorResponse).ErrorCode, kerr.CoordinatorNotAvailable)
	if tb.view.Image().Topics[offsetsTopic] != nil {
		t.Fatalf("%s was created with replication factor 3 on one broker", offsetsTopic)
	}

	wantErr(t, "EndTxn abort", p.abort(), noError)
	waitUntil(t, 10*time.Second, "the abort completes", func() bool { return describe().State == "CompleteAbort" })
}

package broker

// Tests for ERRORS.md rows that were "as Kafka" with no test: Produce's
// acks=all outcomes, RECORD_LIST_TOO_LARGE and UNKNOWN_TOPIC_ID, the
// idempotent producer's sequence rules, ListOffsets' leader-epoch fencing
// and CreateTopics' argument checks through kadm. Each drives the row over
// loopback and, where a client reacts to the code, checks what an
// unmodified franz-go does next, as it would against Kafka 4.x.

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
)

// ghostFollower makes a single broker lead topic's partition 0 with a
// second replica, node ID + 1, that never fetches: it holds the high
// watermark back as a stopped follower whose lag has not yet expired does
// in Kafka. The ISR lag timeout is long, so only setISR changes the ISR.
type ghostFollower struct {
	tb  *testBroker
	cl  *kgo.Client
	p   *replica.Partition
	rep []int32
}

func startGhostFollower(t *testing.T, topic string, minISR int) *ghostFollower {
	t.Helper()
	tb := startBroker(t, t.TempDir(), func(c *config.Config) { c.ReplicaLagTimeMaxMs = 600000 })
	cl := newClient(t, tb.addr)
	createTopic(t, cl, topic, 1, nil)
	p, err := tb.partitions.leaderFor(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := &ghostFollower{tb: tb, cl: cl, p: p, rep: []int32{tb.nodeID, tb.nodeID + 1}}
	rs := replica.ReplicaSet{Replicas: g.rep, ISR: g.rep, MinISR: minISR}
	if err := p.MakeLeader(p.LeaderEpoch()+1, rs, tb.nodeID); err != nil {
		t.Fatal(err)
	}
	return g
}

// setISR changes the ISR as an ISR shrink or expansion written by the
// controller would.
func (g *ghostFollower) setISR(isr []int32, minISR int) {
	g.p.SetISR(replica.ReplicaSet{Replicas: g.rep, ISR: isr, MinISR: minISR})
}

// produceAcksAll sends one acks=all Produce v11 of batch with timeoutMs.
func produceAcksAll(t *testing.T, cl *kgo.Client, topic string, timeoutMs int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(11)
	req.Acks, req.TimeoutMillis = -1, timeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rawRequest(t, cl, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// TestProduceAcksAllTimesOut: an acks=all append that the ISR does not
// replicate within timeout_ms answers REQUEST_TIMED_OUT after the timeout
// (Kafka's DelayedProduce expires with it); the batch stays in the log.
// franz-go does not know whether such a batch was written, so it retries
// it past its retry limit; once the ISR shrinks, the retry is a duplicate
// and the record is acknowledged at its first offset, written once.
func TestProduceAcksAllTimesOut(t *testing.T) {
	g := startGhostFollower(t, "slow", 1)
	start := time.Now()
	got := produceAcksAll(t, g.cl, "slow", 300, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli()))
	wantErr(t, "acks=all past timeout_ms", got.ErrorCode, kerr.RequestTimedOut)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("REQUEST_TIMED_OUT after %v, before the 300ms timeout", d)
	}
	if leo := g.p.LogEndOffset(); leo != 1 {
		t.Fatalf("log end %d after the timed-out append, want 1 (Kafka keeps the batch)", leo)
	}

	fr := newClient(t, g.tb.addr, kgo.DefaultProduceTopic("slow"), kgo.ProduceRequestTimeout(300*time.Millisecond), kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan kgo.ProduceResult, 1)
	go func() { done <- fr.ProduceSync(ctx, &kgo.Record{Value: []byte("x")})[0] }()
	// Several 300ms timeouts pass: franz-go keeps retrying, past RecordRetries(1).
	select {
	case r := <-done:
		t.Fatalf("franz-go gave up while the ISR held the high watermark back: %v", r.Err)
	case <-time.After(2 * time.Second):
	}
	g.setISR([]int32{g.tb.nodeID}, 1)
	r := <-done
	if r.Err != nil {
		t.Fatalf("franz-go after the ISR shrank: %v", r.Err)
	}
	if r.Record.Offset != 1 {
		t.Fatalf("record acknowledged at %d, want 1 (its first append)", r.Record.Offset)
	}
	if end := listLatest(t, g.cl, "slow", 0); end != 2 {
		t.Fatalf("log end %d, want 2: franz-go's retries must not be written again", end)
	}
}

// TestProduceNotEnoughReplicasAfterAppend: an acks=all append whose ISR
// falls below min.insync.replicas while it waits answers
// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the high watermark passes it (Kafka's
// Partition.checkEnoughReplicasReachOffset); the next acks=all produce is
// refused before the append with NOT_ENOUGH_REPLICAS and writes nothing.
func TestProduceNotEnoughReplicasAfterAppend(t *testing.T) {
	g := startGhostFollower(t, "shrink", 2)
	done := make(chan kmsg.ProduceResponseTopicPartition, 1)
	go func() {
		done <- produceAcksAll(t, g.cl, "shrink", 10000, makeBatch(-1, -1, -1, 2, time.Now().UnixMilli()))
	}()
	waitUntil(t, 10*time.Second, "the batch is appended and waits for the ISR", func() bool { return g.p.LogEndOffset() == 2 })
	g.setISR([]int32{g.tb.nodeID}, 2)
	select {
	case got := <-done:
		wantErr(t, "ISR shrank below min.insync.replicas while waiting", got.ErrorCode, kerr.NotEnoughReplicasAfterAppend)
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after the ISR shrank")
	}
	got := produceAcksAll(t, g.cl, "shrink", 1000, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli()))
	wantErr(t, "ISR below min.insync.replicas before the append", got.ErrorCode, kerr.NotEnoughReplicas)
	if leo := g.p.LogEndOffset(); leo != 2 {
		t.Fatalf("log end %d, want 2: NOT_ENOUGH_REPLICAS must write nothing", leo)
	}
}

// TestFranzGoRetriesNotEnoughReplicas: franz-go treats NOT_ENOUGH_REPLICAS
// as retriable and keeps producing, past RecordRetries, until the ISR
// meets min.insync.replicas again; then the record lands once.
func TestFranzGoRetriesNotEnoughReplicas(t *testing.T) {
	g := startGhostFollower(t, "minisr", 2)
	g.setISR([]int32{g.tb.nodeID}, 2)
	got := produceAcksAll(t, g.cl, "minisr", 1000, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli()))
	wantErr(t, "ISR 1 below min.insync.replicas 2", got.ErrorCode, kerr.NotEnoughReplicas)

	fr := newClient(t, g.tb.addr, kgo.DefaultProduceTopic("minisr"), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan kgo.ProduceResult, 1)
	go func() { done <- fr.ProduceSync(ctx, &kgo.Record{Value: []byte("x")})[0] }()
	select {
	case r := <-done:
		t.Fatalf("franz-go gave up while the ISR was short: %v", r.Err)
	case <-time.After(2 * time.Second):
	}
	if leo := g.p.LogEndOffset(); leo != 0 {
		t.Fatalf("log end %d while the ISR was short, want 0", leo)
	}
	// The ISR recovers: the follower is reassigned away, leaving a
	// one-replica partition whose ISR meets min.insync.replicas 1.
	g.p.SetISR(replica.ReplicaSet{Replicas: []int32{g.tb.nodeID}, ISR: []int32{g.tb.nodeID}, MinISR: 1})
	r := <-done
	if r.Err != nil || r.Record.Offset != 0 {
		t.Fatalf("franz-go after the ISR recovered: offset %d, %v; want 0, nil", r.Record.Offset, r.Err)
	}
	if end := listLatest(t, g.cl, "minisr", 0); end != 1 {
		t.Fatalf("log end %d, want 1", end)
	}
}

// batchOfValue builds a valid v2 batch of one record holding value.
func batchOfValue(value []byte) []byte {
	r := kmsg.NewRecord()
	r.Key, r.Value = []byte("k"), value
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	ts := time.Now().UnixMilli()
	b.FirstTimestamp, b.MaxTimestamp = ts, ts
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.NumRecords = 1
	b.Records = r.AppendTo(nil)
	return sealBatch(b)
}

// TestProduceBatchLargerThanSegment: a batch within max.message.bytes but
// larger than segment.bytes answers RECORD_LIST_TOO_LARGE (Kafka's
// UnifiedLog.append: RecordBatchTooLargeException) and writes nothing;
// franz-go does not retry it and hands the code to the record.
func TestProduceBatchLargerThanSegment(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	// Kafka 4.x's smallest segment.bytes is 1 MiB.
	createTopic(t, cl, "bigbatch", 1, map[string]string{"segment.bytes": "1048576", "max.message.bytes": "4194304"})
	value := bytes.Repeat([]byte("v"), 1200000)
	got := produceRaw(t, cl, 11, "bigbatch", 0, batchOfValue(value))
	wantErr(t, "batch above segment.bytes", got.ErrorCode, kerr.RecordListTooLarge)

	fr := newClient(t, tb.addr, kgo.DefaultProduceTopic("bigbatch"), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression())) // franz-go compresses by default: the batch would fit a segment
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fr.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); !errors.Is(err, kerr.RecordListTooLarge) {
		t.Fatalf("franz-go: %v, want RECORD_LIST_TOO_LARGE", err)
	}
	if end := listLatest(t, cl, "bigbatch", 0); end != 0 {
		t.Fatalf("log end %d, want 0", end)
	}
}

// TestProduceV13UnknownTopicID: Produce v13 names topics by ID; an ID no
// topic has answers UNKNOWN_TOPIC_ID for its partitions, the topic's own
// ID is served.
func TestProduceV13UnknownTopicID(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "byid", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, "byid")
	if err != nil {
		t.Fatal(err)
	}
	id := topics["byid"].ID
	produce := func(id [16]byte) int16 {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(13)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.TopicID = id
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = makeBatch(-1, -1, -1, 1, time.Now().UnixMilli())
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, cl, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	wantErr(t, "v13 with the topic's ID", produce(id), noError)
	unknown := id
	unknown[0] ^= 0xff
	wantErr(t, "v13 with an unknown topic ID", produce(unknown), kerr.UnknownTopicID)
	if end := listLatest(t, cl, "byid", 0); end != 1 {
		t.Fatalf("log end %d, want 1", end)
	}
}

// TestIdempotentSequenceRulesAsKafka4: Kafka 4.x accepts any first
// sequence from a producer it has no state for (no UNKNOWN_PRODUCER_ID,
// since KIP-360), answers a retry of one of the producer's last five
// batches with NONE and its original offset (not
// DUPLICATE_SEQUENCE_NUMBER), and a retry of an older batch, like any
// gap, with OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestIdempotentSequenceRulesAsKafka4(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "seqs", 1, nil)
	initResp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
	if err != nil || initResp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %v", err, initResp)
	}
	pid, now := initResp.ProducerID, time.Now().UnixMilli()
	produce := func(what string, seq int32, want *kerr.Error, wantOffset int64) {
		t.Helper()
		got := produceRaw(t, cl, 11, "seqs", 0, makeBatch(pid, 0, seq, 1, now))
		wantErr(t, what, got.ErrorCode, want)
		if want == noError && got.BaseOffset != wantOffset {
			t.Fatalf("%s: offset %d, want %d", what, got.BaseOffset, wantOffset)
		}
	}
	produce("first batch of an unknown producer at sequence 7", 7, noError, 0)
	for seq := int32(8); seq <= 12; seq++ {
		produce("next in sequence", seq, noError, int64(seq-7))
	}
	// Batches 8..12 are the last five; 7 has left the window.
	produce("retry of the oldest of the last five", 8, noError, 1)
	produce("retry of the newest", 12, noError, 5)
	produce("retry of a batch older than the last five", 7, kerr.OutOfOrderSequenceNumber, -1)
	produce("gap", 14, kerr.OutOfOrderSequenceNumber, -1)
	if end := listLatest(t, cl, "seqs", 0); end != 6 {
		t.Fatalf("log end %d, want 6: retries must not be written", end)
	}
}

// TestListOffsetsLeaderEpochFencing: from v4 a current_leader_epoch older
// than the partition's answers FENCED_LEADER_EPOCH, a newer one
// UNKNOWN_LEADER_EPOCH (Kafka's Partition.getLocalLog), the current one or
// -1 is served.
func TestListOffsetsLeaderEpochFencing(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "epochs", 1, nil)
	p, err := tb.partitions.leaderFor("epochs", 0)
	if err != nil {
		t.Fatal(err)
	}
	self := []int32{tb.nodeID}
	// A new leader epoch, as a re-election gives, so an older one exists.
	if err := p.MakeLeader(p.LeaderEpoch()+1, replica.ReplicaSet{Replicas: self, ISR: self, MinISR: 1}, tb.nodeID); err != nil {
		t.Fatal(err)
	}
	epoch := p.LeaderEpoch()
	list := func(version int16, current int32) int16 {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(version)
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "epochs"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, -1, current
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, cl, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode
	}
	for v := int16(4); v <= 10; v++ {
		wantErr(t, "older epoch", list(v, epoch-1), kerr.FencedLeaderEpoch)
		wantErr(t, "newer epoch", list(v, epoch+1), kerr.UnknownLeaderEpoch)
		wantErr(t, "current epoch", list(v, epoch), noError)
		wantErr(t, "no epoch", list(v, -1), noError)
	}
}

// TestKadmCreateTopicsArgumentErrors: kadm surfaces CreateTopics' topic
// codes as the kerr errors, as against Kafka: INVALID_PARTITIONS for 0 or
// below -1 partitions, INVALID_REPLICATION_FACTOR for 0, below -1 or above
// the registered brokers, INVALID_CONFIG for an unknown key or bad value,
// TOPIC_ALREADY_EXISTS for an existing name; none of them creates a topic.
func TestKadmCreateTopicsArgumentErrors(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	adm := kadm.NewClient(newClient(t, tb.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "exists"); err != nil {
		t.Fatal(err)
	}
	bad, one := "-5", "1"
	cases := []struct {
		name       string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       *kerr.Error
	}{
		{"zero-partitions", 0, 1, nil, kerr.InvalidPartitions},
		{"negative-partitions", -2, 1, nil, kerr.InvalidPartitions},
		{"zero-rf", 1, 0, nil, kerr.InvalidReplicationFactor},
		{"negative-rf", 1, -2, nil, kerr.InvalidReplicationFactor},
		{"both-invalid", 0, 0, nil, kerr.InvalidReplicationFactor}, // Kafka checks the factor first
		{"rf-above-brokers", 1, 2, nil, kerr.InvalidReplicationFactor},
		{"bad-config-value", 1, 1, map[string]*string{"retention.ms": &bad}, kerr.InvalidConfig},
		{"unknown-config-key", 1, 1, map[string]*string{"no.such.key": &one}, kerr.InvalidConfig},
		{"exists", 1, 1, nil, kerr.TopicAlreadyExists},
	}
	for _, c := range cases {
		resp, err := adm.CreateTopic(ctx, c.partitions, c.rf, c.configs, c.name)
		if !errors.Is(err, c.want) || !errors.Is(resp.Err, c.want) {
			t.Errorf("%s: kadm error %v (response %v), want %s", c.name, err, resp.Err, c.want.Message)
		}
		if resp.ErrMessage == "" {
			t.Errorf("%s: no error message", c.name)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); len(names) != 1 || names[0] != "exists" {
		t.Fatalf("topics after the refused creations: %v, want [exists]", names)
	}
}

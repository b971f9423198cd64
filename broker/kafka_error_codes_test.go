package broker

// Error codes of compat-tests/ERRORS.md that kbroker once answered
// differently from Kafka 4.x, each driven through the wire by a pinned
// request (or a franz-go client) against an in-process broker.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/coordinator/group"
)

// noError stands for the code NONE (0) in wantErr.
var noError = &kerr.Error{Message: "NONE", Code: 0}

// wantErr fails the test unless code is want's.
func wantErr(t *testing.T, what string, code int16, want *kerr.Error) {
	t.Helper()
	if code != want.Code {
		got := "NONE"
		if code != 0 {
			got = kerr.ErrorForCode(code).Error()
		}
		t.Fatalf("%s: %s, want %s", what, got, want.Message)
	}
}

// rawRequestAs is rawRequest with the request header's client ID set.
func rawRequestAs(t *testing.T, addr, clientID string, req kmsg.Request) kmsg.Response {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	resp, err := roundTrip(nc, clientID, req, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// blockedReads is a coordinator Log whose Reads wait until release is
// closed: a load that outlasts any client's patience.
type blockedReads struct {
	group.Log
	release <-chan struct{}
}

func (l blockedReads) Read(offset int64, maxBytes int) ([]byte, error) {
	<-l.release
	return l.Log.Read(offset, maxBytes)
}

// blockGroupLoads makes every group coordinator shard b starts from now on
// hang in its load until the returned func is called (also at cleanup, so
// shutdown finds the loads finished).
func blockGroupLoads(t *testing.T, b *Broker) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	g := b.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	g.newShard = func(p int32, _ int32, rp *replica.Partition, logger *slog.Logger) *group.Shard {
		return group.NewShard(p, blockedReads{partitionLog{rp}, ch}, g.config(), logger)
	}
	return release
}

func oneGroupCoordinatorPartition(c *config.Config) {
	c.OffsetsTopicReplicationFactor, c.OffsetsTopicNumPartitions = 1, 1
}

func oneTransactionCoordinatorPartition(c *config.Config) {
	c.TransactionStateLogReplicationFactor, c.TransactionStateLogNumPartitions, c.TransactionStateLogMinIsr = 1, 1, 1
}

// TestHeartbeatWhileCoordinatorLoads: a classic Heartbeat reaching a group
// coordinator that is still loading its __consumer_offsets partition (past
// the broker's shardLoadWait) answers NONE, as Kafka's
// GroupCoordinatorService answers it blindly; JoinGroup still answers
// COORDINATOR_LOAD_IN_PROGRESS. Once loaded, the same heartbeat meets the
// real state.
func TestHeartbeatWhileCoordinatorLoads(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneGroupCoordinatorPartition)
	release := blockGroupLoads(t, tb.Broker)
	cl := newClient(t, tb.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coordinatorOf(ctx, t, kadm.NewClient(cl), "loading-group") // creates __consumer_offsets; its shard starts loading

	for _, v := range []int16{0, 4} {
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.SetVersion(v)
		hb.Group, hb.Generation, hb.MemberID = "loading-group", 3, "member-1"
		wantErr(t, "heartbeat while loading", rawRequest(t, cl, hb).(*kmsg.HeartbeatResponse).ErrorCode, noError)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.Group, join.MemberID, join.ProtocolType = "loading-group", "member-1", "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	wantErr(t, "join while loading", rawRequest(t, cl, join).(*kmsg.JoinGroupResponse).ErrorCode, kerr.CoordinatorLoadInProgress)

	release()
	waitUntil(t, 10*time.Second, "the shard to load", func() bool {
		sh, ok := tb.groups.running(0)
		return ok && sh.Loaded()
	})
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.Generation, hb.MemberID = "loading-group", 3, "member-1"
	wantErr(t, "heartbeat once loaded", rawRequest(t, cl, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.UnknownMemberID)
}

// TestListOffsetsHighWatermarkBehindEpoch: a leader whose high watermark
// has not reached the start of its leader epoch answers a consumer's
// ListOffsets for latest (and a timestamp past every record)
// LEADER_NOT_AVAILABLE at v1-v4 and OFFSET_NOT_AVAILABLE from v5, as
// Kafka's ReplicaManager does. The state is set up on the partition
// directly: a second replica in the ISR that never fetches keeps the high
// watermark at 0 under 10 records appended in one epoch, and a new epoch
// then starts at offset 10 (a failover whose new leader had not yet heard
// the old high watermark, without the race).
func TestListOffsetsHighWatermarkBehindEpoch(t *testing.T) {
	cl, p := leaderBehindItsEpoch(t, "behind", makeBatch(-1, -1, -1, 10, time.Now().UnixMilli()))
	if !p.HighWatermarkBehindEpoch() || p.HighWatermark() != 0 {
		t.Fatalf("setup: high watermark %d, behind its epoch %v; want 0, true", p.HighWatermark(), p.HighWatermarkBehindEpoch())
	}

	list := func(version int16, timestamp int64) int16 {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(version)
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "behind"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, timestamp
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, cl, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode
	}
	future := time.Now().Add(time.Hour).UnixMilli()
	for v := int16(1); v <= 11; v++ {
		want := kerr.OffsetNotAvailable
		if v < 5 {
			want = kerr.LeaderNotAvailable
		}
		wantErr(t, fmt.Sprintf("latest at v%d", v), list(v, -1), want)
		wantErr(t, fmt.Sprintf("timestamp past every record at v%d", v), list(v, future), want)
		wantErr(t, fmt.Sprintf("earliest at v%d", v), list(v, -2), noError)
	}
}

// TestProduceToInternalTopicRefused: a client's Produce to
// __consumer_offsets answers INVALID_TOPIC_EXCEPTION and appends nothing,
// to a partition of it that does not exist UNKNOWN_TOPIC_OR_PARTITION, as
// in Kafka; the group coordinator's own writes still land, and Kafka's
// admin client ID may append.
func TestProduceToInternalTopicRefused(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneGroupCoordinatorPartition)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "data", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	commit := func(at int64) {
		t.Helper()
		offsets := kadm.Offsets{}
		offsets.Add(kadm.Offset{Topic: "data", Partition: 0, At: at, LeaderEpoch: -1})
		var resp kadm.OffsetResponses
		var err error
		waitUntil(t, 10*time.Second, "an offset commit", func() bool {
			resp, err = adm.CommitOffsets(ctx, "internal-g", offsets)
			return err == nil && resp.Error() == nil
		})
	}
	commit(1)
	end := listLatest(t, cl, offsetsTopic, 0)

	produce := func(clientID string, version int16, topic string, partition int32) int16 {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(version)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = partition, keyedBatch()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequestAs(t, tb.addr, clientID, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	for _, v := range []int16{3, 9, 12} {
		wantErr(t, "produce to __consumer_offsets", produce("some-client", v, offsetsTopic, 0), kerr.InvalidTopicException)
		wantErr(t, "produce to a partition __consumer_offsets lacks", produce("some-client", v, offsetsTopic, 7), kerr.UnknownTopicOrPartition)
	}
	// A franz-go producer meets the same refusal.
	producer := newClient(t, tb.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	err := producer.ProduceSync(ctx, &kgo.Record{Topic: offsetsTopic, Partition: 0, Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("franz-go produce to __consumer_offsets: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
	if got := listLatest(t, cl, offsetsTopic, 0); got != end {
		t.Fatalf("__consumer_offsets end moved from %d to %d: a refused produce was appended", end, got)
	}

	commit(2) // the coordinator appends through its own path
	fetched, err := adm.FetchOffsets(ctx, "internal-g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("data", 0); !ok || o.Err != nil || o.At != 2 {
		t.Fatalf("offset after the coordinator's commit: %+v (found %v), want 2", o, ok)
	}
	end = listLatest(t, cl, offsetsTopic, 0)
	wantErr(t, "produce as __admin_client", produce(adminClientID, 9, offsetsTopic, 0), noError)
	if got := listLatest(t, cl, offsetsTopic, 0); got != end+1 {
		t.Fatalf("__consumer_offsets end %d after the admin client's append, want %d", got, end+1)
	}
}

// keyedBatch is a batch of one keyed record, well formed down to the
// record (makeBatch leaves record lengths 0, which only a compacted topic,
// decoding records for their keys, notices).
func keyedBatch() []byte {
	rec := kmsg.NewRecord()
	rec.Key, rec.Value = []byte("k"), []byte("v")
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // less the length varint, one byte either way
	b := kmsg.NewRecordBatch()
	b.Magic, b.NumRecords, b.ProducerID, b.ProducerEpoch, b.FirstSequence = 2, 1, -1, -1, -1
	b.FirstTimestamp, b.MaxTimestamp = time.Now().UnixMilli(), time.Now().UnixMilli()
	b.Records = rec.AppendTo(nil)
	return sealBatch(b)
}

// TestInitProducerIDInvalidRequest: InitProducerId with an empty (not
// null) transactional ID answers INVALID_REQUEST, as Kafka's
// TransactionCoordinator does, without looking for a coordinator; so does
// a producer ID given without its epoch or the reverse, with or without a
// transactional ID (Kafka's KafkaApis). A null transactional ID still gets
// an idempotent producer ID.
func TestInitProducerIDInvalidRequest(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneTransactionCoordinatorPartition)
	cl := newClient(t, tb.addr)
	init := func(version int16, txnID *string, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(version)
		req.TransactionalID, req.TransactionTimeoutMillis = txnID, 60000
		req.ProducerID, req.ProducerEpoch = pid, epoch
		return rawRequest(t, cl, req).(*kmsg.InitProducerIDResponse)
	}
	empty := ""
	for v := int16(0); v <= 5; v++ {
		resp := init(v, &empty, -1, -1)
		wantErr(t, "transactional ID \"\"", resp.ErrorCode, kerr.InvalidRequest)
		if resp.ProducerID != -1 || resp.ProducerEpoch != -1 {
			t.Fatalf("v%d transactional ID \"\": producer %d epoch %d, want -1 -1", v, resp.ProducerID, resp.ProducerEpoch)
		}
	}
	for v := int16(3); v <= 5; v++ {
		wantErr(t, "idempotent, producer ID without epoch", init(v, nil, 42, -1).ErrorCode, kerr.InvalidRequest)
		wantErr(t, "idempotent, epoch without producer ID", init(v, nil, -1, 0).ErrorCode, kerr.InvalidRequest)
		wantErr(t, "transactional, producer ID without epoch", init(v, kmsg.StringPtr("tx"), 42, -1).ErrorCode, kerr.InvalidRequest)
	}
	if tb.view.Image().Topics[transactionTopic] != nil {
		t.Fatal("the invalid requests created __transaction_state: they were routed")
	}
	if resp := init(4, nil, -1, -1); resp.ErrorCode != 0 || resp.ProducerID < 0 || resp.ProducerEpoch != 0 {
		t.Fatalf("idempotent producer: %+v", resp)
	}
}

// TestAddPartitionsToTxnUnknownPartition: AddPartitionsToTxn naming a
// topic or partition that does not exist answers
// UNKNOWN_TOPIC_OR_PARTITION for those and OPERATION_NOT_ATTEMPTED for the
// transaction's others, adding none (Kafka's KafkaApis), from a producer
// (v3) and in a broker's batched request (v4) alike; a transactions-v2
// produce to such a partition adds nothing either.
func TestAddPartitionsToTxnUnknownPartition(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneTransactionCoordinatorPartition)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "apt", 2, nil)
	prod := newV1Producer(t, cl, cl, "apt-tx")
	other := newV1Producer(t, cl, cl, "apt-tx-batched")

	describe := func(id string) kmsg.DescribeTransactionsResponseTransactionState {
		t.Helper()
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{id}
		return rawRequest(t, cl, req).(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
	}
	want := map[string]map[int32]*kerr.Error{
		"apt":  {0: kerr.OperationNotAttempted, 1: kerr.OperationNotAttempted, 5: kerr.UnknownTopicOrPartition},
		"nope": {0: kerr.UnknownTopicOrPartition},
	}

	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(3)
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = prod.id, prod.pid, prod.epoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "apt", Partitions: []int32{0, 5, 1}}, {Topic: "nope", Partitions: []int32{0}}}
	resp := rawRequest(t, cl, req).(*kmsg.AddPartitionsToTxnResponse)
	n := 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			wantErr(t, "v3 "+rt.Topic, rp.ErrorCode, want[rt.Topic][rp.Partition])
			n++
		}
	}
	if n != 4 {
		t.Fatalf("v3: %d partitions answered, want 4: %+v", n, resp.Topics)
	}
	if st := describe(prod.id); st.ErrorCode != 0 || st.State != "Empty" || len(st.Topics) != 0 {
		t.Fatalf("v3 refused add changed the transaction: %+v", st)
	}

	batched := kmsg.NewPtrAddPartitionsToTxnRequest()
	batched.SetVersion(4)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = other.id, other.pid, other.epoch
	tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "apt", Partitions: []int32{0, 5, 1}}, {Topic: "nope", Partitions: []int32{0}}}
	batched.Transactions = append(batched.Transactions, tx)
	bresp := rawRequest(t, cl, batched).(*kmsg.AddPartitionsToTxnResponse)
	if len(bresp.Transactions) != 1 || bresp.Transactions[0].TransactionalID != other.id {
		t.Fatalf("v4: %+v", bresp)
	}
	n = 0
	for _, rt := range bresp.Transactions[0].Topics {
		for _, rp := range rt.Partitions {
			wantErr(t, "v4 "+rt.Topic, rp.ErrorCode, want[rt.Topic][rp.Partition])
			n++
		}
	}
	if n != 4 {
		t.Fatalf("v4: %d partitions answered, want 4", n)
	}
	if st := describe(other.id); st.ErrorCode != 0 || st.State != "Empty" || len(st.Topics) != 0 {
		t.Fatalf("v4 refused add changed the transaction: %+v", st)
	}

	// A transactions-v2 produce (v12+) adds its partition implicitly: not
	// one that does not exist, which answers UNKNOWN_TOPIC_OR_PARTITION
	// before any transaction work, as Kafka's KafkaApis does.
	tv2 := newV1Producer(t, cl, cl, "apt-tv2")
	wantErr(t, "v12 produce to a missing partition", tv2.produce(12, "apt", 5, 0).ErrorCode, kerr.UnknownTopicOrPartition)
	wantErr(t, "v12 produce to a missing topic", tv2.produce(12, "nope", 0, 0).ErrorCode, kerr.UnknownTopicOrPartition)
	if st := describe(tv2.id); st.ErrorCode != 0 || st.State != "Empty" || len(st.Topics) != 0 {
		t.Fatalf("produce to missing partitions changed the transaction: %+v", st)
	}

	// Existing partitions alone are added.
	wantErr(t, "add an existing partition", prod.addPartition("apt", 1), noError)
	if st := describe(prod.id); st.State != "Ongoing" || len(st.Topics) != 1 || st.Topics[0].Topic != "apt" {
		t.Fatalf("after a valid add: %+v", st)
	}
}

// TestEmptyGroupID: the group ID "" is refused with INVALID_GROUP_ID by
// the APIs Kafka's GroupCoordinatorService refuses it for — JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, TxnOffsetCommit, OffsetDelete,
// ConsumerGroupDescribe — before the coordinator is consulted (here, one
// that is still loading); OffsetCommit, OffsetFetch, DescribeGroups and
// DeleteGroups serve a group named "", as Kafka keeps doing for backward
// compatibility.
func TestEmptyGroupID(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneGroupCoordinatorPartition, oneTransactionCoordinatorPartition)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "eg", 1, nil)
	release := blockGroupLoads(t, tb.Broker)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coordinatorOf(ctx, t, kadm.NewClient(cl), "eg-group") // creates __consumer_offsets; its one shard hangs loading

	t.Run("refused_before_the_coordinator", func(t *testing.T) { checkEmptyGroupRefused(t, cl) })

	release()
	waitUntil(t, 10*time.Second, "the shard to load", func() bool {
		sh, ok := tb.groups.running(0)
		return ok && sh.Loaded()
	})

	t.Run("served_as_a_group_named_empty", func(t *testing.T) {
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.SetVersion(2)
		oc.Generation, oc.RetentionTimeMillis = -1, -1
		oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "eg", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 7, LeaderEpoch: -1}}}}
		wantErr(t, "OffsetCommit", rawRequest(t, cl, oc).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, noError)

		for _, v := range []int16{1, 5, 8} {
			of := kmsg.NewPtrOffsetFetchRequest()
			of.SetVersion(v)
			of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "eg", Partitions: []int32{0}}}
			of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "eg", Partitions: []int32{0}}}}}
			fr := rawRequest(t, cl, of).(*kmsg.OffsetFetchResponse)
			code, offset := fr.ErrorCode, int64(-2)
			if v >= 8 {
				code = fr.Groups[0].ErrorCode
				offset = fr.Groups[0].Topics[0].Partitions[0].Offset
			} else {
				offset = fr.Topics[0].Partitions[0].Offset
				if fr.Topics[0].Partitions[0].ErrorCode != 0 {
					code = fr.Topics[0].Partitions[0].ErrorCode
				}
			}
			wantErr(t, "OffsetFetch", code, noError)
			if offset != 7 {
				t.Fatalf("OffsetFetch v%d of group \"\": offset %d, want 7", v, offset)
			}
		}

		// OffsetDelete refuses "", so the commit survives it.
		od := kmsg.NewPtrOffsetDeleteRequest()
		od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "eg", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
		wantErr(t, "OffsetDelete once loaded", rawRequest(t, cl, od).(*kmsg.OffsetDeleteResponse).ErrorCode, kerr.InvalidGroupID)

		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.SetVersion(5)
		dg.Groups = []string{""}
		g := rawRequest(t, cl, dg).(*kmsg.DescribeGroupsResponse).Groups[0]
		if g.ErrorCode != 0 || g.Group != "" || g.State != "Empty" {
			t.Fatalf("DescribeGroups of group \"\": %+v, want NONE, Empty", g)
		}

		del := kmsg.NewPtrDeleteGroupsRequest()
		del.SetVersion(2)
		del.Groups = []string{""}
		wantErr(t, "DeleteGroups", rawRequest(t, cl, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, noError)
		wantErr(t, "DeleteGroups again", rawRequest(t, cl, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.GroupIDNotFound)
	})
}

// checkEmptyGroupRefused sends cl's first seed broker the requests Kafka
// refuses the group ID "" for, and checks each answers INVALID_GROUP_ID at
// its level; TxnOffsetCommit answers UNKNOWN_TOPIC_OR_PARTITION first for
// partitions that do not exist (topic "eg" must have one partition).
func checkEmptyGroupRefused(t *testing.T, cl *kgo.Client) {
	t.Helper()
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	jr := rawRequest(t, cl, join).(*kmsg.JoinGroupResponse)
	wantErr(t, "JoinGroup", jr.ErrorCode, kerr.InvalidGroupID)
	if jr.Generation != -1 {
		t.Fatalf("JoinGroup generation %d, want -1", jr.Generation)
	}

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(3)
	sync.MemberID, sync.Generation = "m", 1
	wantErr(t, "SyncGroup", rawRequest(t, cl, sync).(*kmsg.SyncGroupResponse).ErrorCode, kerr.InvalidGroupID)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(3)
	hb.MemberID, hb.Generation = "m", 1
	wantErr(t, "Heartbeat", rawRequest(t, cl, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.InvalidGroupID)

	for _, v := range []int16{0, 3} {
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.SetVersion(v)
		leave.MemberID = "m"
		leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
		lr := rawRequest(t, cl, leave).(*kmsg.LeaveGroupResponse)
		wantErr(t, "LeaveGroup", lr.ErrorCode, kerr.InvalidGroupID)
		if len(lr.Members) != 0 {
			t.Fatalf("LeaveGroup v%d answered members %+v", v, lr.Members)
		}
	}

	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "eg", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}, {Topic: "nope", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	odr := rawRequest(t, cl, od).(*kmsg.OffsetDeleteResponse)
	wantErr(t, "OffsetDelete", odr.ErrorCode, kerr.InvalidGroupID)
	if len(odr.Topics) != 0 {
		t.Fatalf("OffsetDelete answered topics %+v beside its top-level error", odr.Topics)
	}

	cgd := kmsg.NewPtrConsumerGroupDescribeRequest()
	cgd.Groups = []string{""}
	cgr := rawRequest(t, cl, cgd).(*kmsg.ConsumerGroupDescribeResponse)
	if len(cgr.Groups) != 1 || cgr.Groups[0].Group != "" {
		t.Fatalf("ConsumerGroupDescribe: %+v", cgr.Groups)
	}
	wantErr(t, "ConsumerGroupDescribe", cgr.Groups[0].ErrorCode, kerr.InvalidGroupID)

	for _, v := range []int16{0, 3, 5} {
		tc := kmsg.NewPtrTxnOffsetCommitRequest()
		tc.SetVersion(v)
		tc.TransactionalID, tc.ProducerID, tc.ProducerEpoch, tc.Generation = "eg-tx", 7, 0, -1
		tc.Topics = []kmsg.TxnOffsetCommitRequestTopic{
			{Topic: "eg", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}, {Partition: 9, Offset: 5, LeaderEpoch: -1}}},
			{Topic: "nope", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}},
		}
		want := map[string]map[int32]*kerr.Error{
			"eg":   {0: kerr.InvalidGroupID, 9: kerr.UnknownTopicOrPartition},
			"nope": {0: kerr.UnknownTopicOrPartition},
		}
		tr := rawRequest(t, cl, tc).(*kmsg.TxnOffsetCommitResponse)
		n := 0
		for _, rt := range tr.Topics {
			for _, rp := range rt.Partitions {
				wantErr(t, "TxnOffsetCommit "+rt.Topic, rp.ErrorCode, want[rt.Topic][rp.Partition])
				n++
			}
		}
		if n != 3 {
			t.Fatalf("TxnOffsetCommit v%d answered %d partitions, want 3", v, n)
		}
	}
}

// TestEmptyGroupIDNotRouted: in a cluster, the broker that does not
// coordinate the group "" refuses it with INVALID_GROUP_ID too, not
// NOT_COORDINATOR: Kafka checks the group ID before routing.
func TestEmptyGroupIDNotRouted(t *testing.T) {
	c := startCluster(t, 2, oneGroupCoordinatorPartition)
	createTopic(t, newClient(t, c.addrs()[0]), "eg", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coordinatorOf(ctx, t, kadm.NewClient(c.client()), "eg-group") // creates __consumer_offsets
	waitUntil(t, 10*time.Second, "every broker sees the topics", func() bool {
		for _, b := range c.brokers {
			if img := b.view.Image(); img.Topics["eg"] == nil || img.Topics[offsetsTopic] == nil {
				return false
			}
		}
		return true
	})
	for _, addr := range c.addrs() {
		checkEmptyGroupRefused(t, newClient(t, addr))
	}
}

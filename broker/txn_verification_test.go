package broker

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// txnBatch is makeBatch with the transactional attribute set.
func txnBatch(producerID int64, epoch int16, seq int32) []byte {
	raw := makeBatch(producerID, epoch, seq, 1, time.Now().UnixMilli())
	raw[22] |= 0x10 // attributes (int16 at byte 21): bit 4, transactional
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	raw[17], raw[18], raw[19], raw[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return raw
}

// v1Producer drives a transactions-v1 producer with pinned request
// versions, as Sarama or a Java client before 4.0 would: coordinator
// requests go to coord's seed broker, produce requests to leader's.
type v1Producer struct {
	t             *testing.T
	coord, leader *kgo.Client
	id            string
	pid           int64
	epoch         int16
}

func newV1Producer(t *testing.T, coord, leader *kgo.Client, id string) *v1Producer {
	cl := coord
	t.Helper()
	// FindCoordinator creates __transaction_state, as a client's first
	// step does.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorType = id, 1
	waitUntil(t, 10*time.Second, "the transaction coordinator is found", func() bool {
		resp, err := fc.RequestWith(context.Background(), cl)
		return err == nil && resp.ErrorCode == 0 && (len(resp.Coordinators) == 0 || resp.Coordinators[0].ErrorCode == 0)
	})
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 60000
	var resp *kmsg.InitProducerIDResponse
	waitUntil(t, 10*time.Second, "InitProducerId succeeds", func() bool {
		resp = rawRequest(t, cl, req).(*kmsg.InitProducerIDResponse)
		return resp.ErrorCode == 0
	})
	return &v1Producer{t: t, coord: coord, leader: leader, id: id, pid: resp.ProducerID, epoch: resp.ProducerEpoch}
}

func (p *v1Producer) produce(version int16, topic string, partition, seq int32) kmsg.ProduceResponseTopicPartition {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.TransactionID = &p.id
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, txnBatch(p.pid, p.epoch, seq)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rawRequest(p.t, p.leader, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func (p *v1Producer) addPartition(topic string, partition int32) int16 {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(3)
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = p.id, p.pid, p.epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	return rawRequest(p.t, p.coord, req).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
}

func (p *v1Producer) abort() int16 {
	req := kmsg.NewPtrEndTxnRequest()
	req.SetVersion(3)
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = p.id, p.pid, p.epoch, false
	return rawRequest(p.t, p.coord, req).(*kmsg.EndTxnResponse).ErrorCode
}

// TestTransactionVerification (KIP-890 part 1): a transactions-v1
// producer's batch for a partition that is not in its transaction is
// refused — INVALID_TXN_STATE before Produce v11, TRANSACTION_ABORTABLE
// from v11 — and, above all, a batch arriving after its transaction was
// aborted cannot open a hanging transaction that would pin the last
// stable offset.
func TestTransactionVerification(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.TransactionStateLogReplicationFactor = 1
		c.TransactionStateLogNumPartitions = 1
		c.TransactionStateLogMinIsr = 1
	})
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "tv", 1, nil)
	p := newV1Producer(t, cl, cl, "v1-producer")

	if got := p.produce(9, "tv", 0, 0); got.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("produce v9 before AddPartitionsToTxn: error %d, want INVALID_TXN_STATE", got.ErrorCode)
	}
	if got := p.produce(11, "tv", 0, 0); got.ErrorCode != kerr.TransactionAbortable.Code {
		t.Errorf("produce v11 before AddPartitionsToTxn: error %d, want TRANSACTION_ABORTABLE", got.ErrorCode)
	}
	if code := p.addPartition("tv", 0); code != 0 {
		t.Fatalf("AddPartitionsToTxn: %d", code)
	}
	if got := p.produce(9, "tv", 0, 0); got.ErrorCode != 0 || got.BaseOffset != 0 {
		t.Fatalf("produce after AddPartitionsToTxn: error %d offset %d, want success at 0", got.ErrorCode, got.BaseOffset)
	}
	if code := p.abort(); code != 0 {
		t.Fatalf("EndTxn abort: %d", code)
	}
	part, err := tb.partitions.leaderFor("tv", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the abort marker is written and stable", func() bool {
		return part.LogEndOffset() == 2 && part.LastStableOffset() == 2
	})

	// The batch a client retried after its transaction was aborted.
	if got := p.produce(9, "tv", 0, 1); got.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("late produce after the abort: error %d offset %d, want INVALID_TXN_STATE", got.ErrorCode, got.BaseOffset)
	}
	if end, lso := part.LogEndOffset(), part.LastStableOffset(); end != 2 || lso != 2 {
		t.Errorf("after the late produce: log end %d, last stable offset %d; want both 2 (no hanging transaction)", end, lso)
	}
}

// TestVerificationGuardFencedByMarker: a marker written between the
// coordinator's answer and the append voids the verification, so the
// append cannot open a transaction the coordinator has already ended.
func TestVerificationGuardFencedByMarker(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "guard", 1, nil)
	part, err := tb.partitions.leaderFor("guard", 0)
	if err != nil {
		t.Fatal(err)
	}
	const pid, epoch = 4242, 0
	guard := part.StartVerification(pid)
	if guard == nil {
		t.Fatal("no guard for a producer without an open transaction")
	}
	if _, err := part.AppendControl(pid, epoch, false, 0); err != nil {
		t.Fatal(err)
	}
	_, err = part.AppendVerified(txnBatch(pid, epoch, 0), guard)
	if code, _ := errorCode(err); code != kerr.InvalidTxnState.Code {
		t.Fatalf("append after a marker voided the verification: %v, want INVALID_TXN_STATE", err)
	}
	part.EndVerification(pid, guard)

	guard = part.StartVerification(pid)
	if _, err := part.AppendVerified(txnBatch(pid, epoch, 0), guard); err != nil {
		t.Fatalf("verified append: %v", err)
	}
	part.EndVerification(pid, guard)
	if g := part.StartVerification(pid); g != nil {
		t.Fatal("a producer with an open transaction needs no verification")
	}
}

// TestTransactionVerificationAcrossBrokers: the partition leader asks a
// transaction coordinator on another broker (AddPartitionsToTxn v4+,
// verify only) and follows its answer.
func TestTransactionVerificationAcrossBrokers(t *testing.T) {
	c := startCluster(t, 3)
	createReplicatedTopic(t, c, "tvr", 3, "2")
	const id = "v1-remote"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorType = id, 1
	var coordinator int32 = -1
	waitUntil(t, 20*time.Second, "the transaction coordinator is found", func() bool {
		resp, err := fc.RequestWith(context.Background(), c.client())
		if err != nil || resp.ErrorCode != 0 || len(resp.Coordinators) > 0 && resp.Coordinators[0].ErrorCode != 0 {
			return false
		}
		coordinator = resp.NodeID
		if len(resp.Coordinators) > 0 {
			coordinator = resp.Coordinators[0].NodeID
		}
		return true
	})
	partition := int32(-1)
	for p := int32(0); p < 3; p++ {
		if l := c.leaderOf("tvr", p); l >= 0 && l != coordinator {
			partition = p
			break
		}
	}
	if partition < 0 {
		t.Fatalf("every partition of tvr is led by the coordinator %d", coordinator)
	}
	leader := c.leaderOf("tvr", partition)
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("tvr", partition)) == 3 })
	coordCl := newClient(t, c.brokers[coordinator-1].listeners[0].Addr().String())
	leaderCl := newClient(t, c.brokers[leader-1].listeners[0].Addr().String())
	p := newV1Producer(t, coordCl, leaderCl, id)

	if got := p.produce(9, "tvr", partition, 0); got.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("produce to leader %d before AddPartitionsToTxn (coordinator %d): error %d, want INVALID_TXN_STATE", leader, coordinator, got.ErrorCode)
	}
	if code := p.addPartition("tvr", partition); code != 0 {
		t.Fatalf("AddPartitionsToTxn: %d", code)
	}
	if got := p.produce(9, "tvr", partition, 0); got.ErrorCode != 0 {
		t.Fatalf("produce after AddPartitionsToTxn: error %d, want success", got.ErrorCode)
	}
	if code := p.abort(); code != 0 {
		t.Fatalf("EndTxn abort: %d", code)
	}
	part, err := c.brokers[leader-1].partitions.leaderFor("tvr", partition)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the abort marker is written and stable", func() bool {
		return part.LogEndOffset() == 2 && part.LastStableOffset() == 2
	})
	if got := p.produce(9, "tvr", partition, 1); got.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("late produce after the abort: error %d, want INVALID_TXN_STATE", got.ErrorCode)
	}
	if end, lso := part.LogEndOffset(), part.LastStableOffset(); end != 2 || lso != 2 {
		t.Errorf("after the late produce: log end %d, last stable offset %d; want both 2", end, lso)
	}
}

func (p *v1Producer) addOffsets(group string) int16 {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.SetVersion(3)
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = p.id, p.pid, p.epoch, group
	return rawRequest(p.t, p.coord, req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
}

func (p *v1Producer) commitOffset(group, topic string, offset int64) int16 {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.SetVersion(3)
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = p.id, group, p.pid, p.epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rawRequest(p.t, p.coord, req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// TestTxnOffsetCommitVerification (KIP-890 part 1 for offsets): a
// transactions-v1 TxnOffsetCommit whose group partition is not in the
// transaction — never added, or added to a transaction since aborted — is
// refused with INVALID_TXN_STATE, so it cannot leave offsets pending
// forever (which would answer require_stable fetches UNSTABLE_OFFSET_COMMIT
// for good).
func TestTxnOffsetCommitVerification(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.TransactionStateLogReplicationFactor, c.TransactionStateLogNumPartitions, c.TransactionStateLogMinIsr = 1, 1, 1
		c.OffsetsTopicReplicationFactor, c.OffsetsTopicNumPartitions = 1, 1
	})
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "tvo", 1, nil)
	const group = "v1-group"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = group
	waitUntil(t, 10*time.Second, "the group coordinator is found", func() bool {
		resp, err := fc.RequestWith(context.Background(), cl)
		return err == nil && resp.ErrorCode == 0 && (len(resp.Coordinators) == 0 || resp.Coordinators[0].ErrorCode == 0)
	})
	p := newV1Producer(t, cl, cl, "v1-offsets")

	if code := p.commitOffset(group, "tvo", 5); code != kerr.InvalidTxnState.Code {
		t.Errorf("TxnOffsetCommit before AddOffsetsToTxn: %d, want INVALID_TXN_STATE", code)
	}
	if code := p.addOffsets(group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %d", code)
	}
	if code := p.commitOffset(group, "tvo", 5); code != 0 {
		t.Fatalf("TxnOffsetCommit after AddOffsetsToTxn: %d", code)
	}
	if code := p.abort(); code != 0 {
		t.Fatalf("EndTxn abort: %d", code)
	}
	offsets, err := tb.partitions.leaderFor("__consumer_offsets", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the abort marker reaches the group's partition", func() bool {
		return offsets.LastStableOffset() == offsets.LogEndOffset() && !offsets.HasOngoingTransaction(p.pid)
	})
	// Until the coordinator has written CompleteAbort it answers
	// CONCURRENT_TRANSACTIONS, which reaches the client as the retriable
	// COORDINATOR_NOT_AVAILABLE; a client retries, and so does this test.
	var late int16
	waitUntil(t, 10*time.Second, "the coordinator completes the abort", func() bool {
		late = p.commitOffset(group, "tvo", 7)
		return late != kerr.CoordinatorNotAvailable.Code
	})
	if late != kerr.InvalidTxnState.Code {
		t.Errorf("late TxnOffsetCommit after the abort: %d, want INVALID_TXN_STATE", late)
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(7)
	fetch.Group, fetch.RequireStable = group, true
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic, ft.Partitions = "tvo", []int32{0}
	fetch.Topics = append(fetch.Topics, ft)
	resp := rawRequest(t, cl, fetch).(*kmsg.OffsetFetchResponse)
	if got := resp.Topics[0].Partitions[0]; got.ErrorCode != 0 || got.Offset != -1 {
		t.Errorf("require_stable offset fetch after the late commit: error %d offset %d, want no pending offset (error 0, offset -1)", got.ErrorCode, got.Offset)
	}
}

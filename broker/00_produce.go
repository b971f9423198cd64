package broker

// Produce: v3-13 (v0-v2 advertised for librdkafka, KAFKA-18659; a v0-v2
// request closes the connection, as in Kafka 4.x)
//
// Behavior:
// * Checked in Kafka's order: a transactional batch in a request without a
//   transactional ID refuses every partition
//   (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); then per partition its
//   existence (UNKNOWN_TOPIC_OR_PARTITION), the first batch's format (magic
//   0/1 INVALID_RECORD, zstd below v7 UNSUPPORTED_COMPRESSION_TYPE), the
//   transaction, acks (INVALID_REQUIRED_ACKS), and then the append.
// * Each partition's record set is validated whole (magic 2, CRC-32C, sizes,
//   max.message.bytes) before anything of it is written.
// * Offsets and the leader epoch are assigned by rewriting the batch header;
//   the bytes are otherwise appended verbatim.
// * A client's records are checked as Kafka's LogValidator checks them, and
//   decoded only when a check needs them: a record without a key on a
//   compacted topic is INVALID_RECORD, a CreateTime timestamp outside
//   message.timestamp.before/after.max.ms INVALID_TIMESTAMP (KIP-937); one
//   such record refuses the whole batch, and v8+ names each in
//   record_errors with an error_message. Records that do not decode are
//   INVALID_RECORD when a check reads them; Kafka reads every record, so
//   it also refuses them when no check needs them, where kbroker appends
//   them undecoded.
// * Idempotent batches are checked against the producer's last five batches:
//   duplicates get their original offset back, gaps
//   OUT_OF_ORDER_SEQUENCE_NUMBER, stale epochs INVALID_PRODUCER_EPOCH.
// * Transactions v2 (v12+): a transactional batch adds its partition to the
//   producer's transaction through the coordinator before it is appended.
// * acks=all: the ISR must meet min.insync.replicas before the append
//   (NOT_ENOUGH_REPLICAS) and after it (NOT_ENOUGH_REPLICAS_AFTER_APPEND);
//   the response waits until the high watermark passes the batch, or the
//   request timeout (REQUEST_TIMED_OUT). A leader whose etcd lease is no
//   longer certainly alive acknowledges nothing (NOT_LEADER_OR_FOLLOWER).
// * acks=0 gets no response; if any partition failed the connection is
//   closed instead, as Kafka does, so the client notices.
// * The coordinators' internal topics (__consumer_offsets,
//   __transaction_state) refuse clients' appends with
//   INVALID_TOPIC_EXCEPTION, unless the client ID is Kafka's
//   "__admin_client"; the coordinators append through
//   Partition.AppendAsCoordinator, not here.
//
// Version notes:
// * v3: transactional ID, record batch v2 only; v5: log start offset;
//   v7: zstd (UNSUPPORTED_COMPRESSION_TYPE below); v8: record errors, error message; v9: flexible; v10: current leader
//   and node endpoints after NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH
//   (KIP-951, tagged; leader_hints.go); v13: topic IDs.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/protocol/batch"
)

func handleProduce(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ProduceRequest)
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	img := c.b.view.Image()

	// Kafka refuses the whole request, every partition alike, when a
	// partition's records are transactional and no transactional ID came
	// with them: TRANSACTIONAL_ID_AUTHORIZATION_FAILED, checked before
	// topics, records and acks, and even without an authorizer.
	var reqErr *kerr.Error
	if r.TransactionID == nil && hasTransactionalBatch(r) {
		reqErr = kerr.TransactionalIDAuthorizationFailed
	}
	validAcks := r.Acks == 0 || r.Acks == 1 || r.Acks == -1
	failed := false
	// acks=all appends wait for the high watermark after the loop.
	type hwWait struct {
		p      *replica.Partition
		offset int64
		ti, pi int // the partition's place in resp
	}
	var waits []hwWait
	for _, rt := range r.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		name := rt.Topic
		if r.Version >= 13 {
			if t := img.TopicsByID[rt.TopicID]; t != nil {
				name = t.Name
			} else {
				name = ""
			}
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			// Kafka's order: the topic and partition, the records' format
			// (ProduceRequest.validateRecords), the transaction, then acks
			// (ReplicaManager.appendRecords), then the append.
			if reqErr != nil {
				sp.ErrorCode = reqErr.Code
			} else if name == "" || !partitionExists(img, name, rp.Partition) {
				sp.ErrorCode = produceErrorCode(c, name, rp.Partition, errUnknownPartition, r.Version)
			} else if code := recordsFormatCode(c, name, rp, r.Version); code != 0 {
				sp.ErrorCode = code
			} else if code, verified := c.checkTransaction(r, name, rp); code != 0 {
				sp.ErrorCode = code
			} else if !validAcks {
				if verified != nil {
					verified.p.EndVerification(verified.producerID, verified.guard)
				}
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
			} else {
				p, res, err := c.produceTo(name, rp.Partition, rp.Records, r.Acks == -1, hdr.clientID == adminClientID, verified)
				if err != nil {
					sp.ErrorCode = produceErrorCode(c, name, rp.Partition, err, r.Version)
					var refused *batch.RecordErrors
					if errors.As(err, &refused) {
						sp.LogStartOffset = res.LogStartOffset
						setRecordErrors(&sp, refused, r.Version)
					}
				} else {
					sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
					if r.Acks == -1 {
						waits = append(waits, hwWait{p: p, offset: res.LastOffset + 1, ti: len(resp.Topics), pi: len(st.Partitions)})
					}
				}
			}
			if sp.ErrorCode != 0 {
				failed = true
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if r.Acks == 0 {
		if failed {
			return reply{}, fmt.Errorf("acks=0 produce failed for at least one partition; closing the connection so the client notices")
		}
		return noReply(), nil
	}
	pending := waits[:0]
	for _, w := range waits {
		if w.p.HighWatermark() < w.offset {
			pending = append(pending, w)
		}
	}
	if len(pending) == 0 {
		addLeaderHints(c, r, resp)
		return now(resp), nil
	}
	// acks=all: answer once the ISR holds every batch, or at the timeout.
	timeout := time.Duration(max(r.TimeoutMillis, 0)) * time.Millisecond
	return later(func() kmsg.Response {
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		defer cancel()
		for _, w := range pending {
			err := w.p.WaitForHighWatermark(ctx, w.offset)
			if err == nil && !c.b.lease.fresh() {
				err = errNotLeader
			}
			if err != nil {
				sp := &resp.Topics[w.ti].Partitions[w.pi]
				sp.ErrorCode = c.b.partitionErrorCode(err, "acks=all wait", w.p.Topic, w.p.Index)
			}
		}
		addLeaderHints(c, r, resp)
		return resp
	}), nil
}

// verifiedAppend carries a transaction verification (KIP-890 part 1) from
// the coordinator's answer to the append.
type verifiedAppend struct {
	p          *replica.Partition
	producerID int64
	guard      *replica.VerificationGuard
}

// checkTransaction settles a transactional batch's partition with the
// transaction coordinator before it is appended, and returns the
// partition's error code, 0 to go on with the append:
//
//   - transactions v2 (KIP-890 part 2, Produce v12+): the batch adds its
//     partition to the producer's transaction itself;
//   - transactions v1 (older Produce versions), when
//     transaction.partition.verification.enable: the producer's first
//     batch on this partition is appended only if the coordinator confirms
//     the partition is in the transaction (KIP-890 part 1); the returned
//     verifiedAppend must reach produceTo.
//
// Errors map as Kafka's AddPartitionsToTxnManager and ReplicaManager map
// them: PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH (what producers
// expect from a produce); TRANSACTION_ABORTABLE becomes INVALID_TXN_STATE
// before Produce v11, which introduced it; retriable coordinator errors
// become NOT_ENOUGH_REPLICAS, so the producer retries the batch rather than
// aborting.
func (c *conn) checkTransaction(r *kmsg.ProduceRequest, topic string, rp kmsg.ProduceRequestTopicPartition) (int16, *verifiedAppend) {
	if r.TransactionID == nil || !partitionExists(c.b.view.Image(), topic, rp.Partition) {
		// Not transactional, or a partition that does not exist: produceTo
		// answers that before any transaction work, as Kafka does.
		return 0, nil
	}
	h, err := batch.ParseHeader(rp.Records)
	if err != nil || !h.IsTransactional() {
		return 0, nil // validation of the append answers for a bad batch
	}
	parts := map[string][]int32{topic: {rp.Partition}}
	ctx, cancel := c.requestContext()
	defer cancel()
	if r.Version >= 12 {
		return transactionCheckCode(c.b.addToTransaction(ctx, *r.TransactionID, h.ProducerID, h.ProducerEpoch, parts), r.Version), nil
	}
	if !c.b.cfg.TransactionPartitionVerificationEnable {
		return 0, nil
	}
	p, err := c.b.partitions.leaderFor(topic, rp.Partition)
	if err != nil {
		return 0, nil // the append answers NOT_LEADER_OR_FOLLOWER and the like
	}
	guard := p.StartVerification(h.ProducerID)
	if guard == nil {
		return 0, nil // a transaction is open here: the partition was verified
	}
	code := transactionCheckCode(c.b.verifyInTransaction(ctx, *r.TransactionID, h.ProducerID, h.ProducerEpoch, parts), r.Version)
	if code != 0 {
		p.EndVerification(h.ProducerID, guard)
		return code, nil
	}
	return 0, &verifiedAppend{p: p, producerID: h.ProducerID, guard: guard}
}

func transactionCheckCode(code int16, produceVersion int16) int16 {
	switch code {
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if produceVersion < 11 {
			return kerr.InvalidTxnState.Code
		}
	case kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code:
		return kerr.NotEnoughReplicas.Code
	}
	return code
}

// hasTransactionalBatch reports whether any partition's records start
// with a whole transactional batch (Kafka's
// RequestUtils.hasTransactionalRecords, which looks at each partition's
// first batch only).
func hasTransactionalBatch(r *kmsg.ProduceRequest) bool {
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			h, err := batch.ParseHeader(rp.Records)
			if err == nil && h.TotalSize() <= len(rp.Records) && h.IsTransactional() {
				return true
			}
		}
	}
	return false
}

// recordsFormatCode checks a partition's first batch as Kafka's
// ProduceRequest.validateRecords does before anything else looks at the
// records: a legacy (magic 0 or 1) batch is INVALID_RECORD, a whole
// zstd-compressed batch below Produce v7 (KIP-110)
// UNSUPPORTED_COMPRESSION_TYPE. Anything else wrong with the records is
// left to the append's validation.
func recordsFormatCode(c *conn, topic string, rp kmsg.ProduceRequestTopicPartition, version int16) int16 {
	h, err := batch.ParseHeader(rp.Records)
	switch {
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return produceErrorCode(c, topic, rp.Partition, err, version)
	case err == nil && version < 7 && h.Codec() == batch.CodecZstd && h.TotalSize() <= len(rp.Records):
		return kerr.UnsupportedCompressionType.Code
	}
	return 0
}

// adminClientID is the client ID Kafka lets append to internal topics
// (AdminUtils.ADMIN_CLIENT_ID).
const adminClientID = "__admin_client"

// errInternalTopic refuses a client's append to a coordinator's internal
// topic (INVALID_TOPIC_EXCEPTION, as Kafka's ReplicaManager refuses it).
var errInternalTopic = errors.New("broker: cannot append to an internal topic")

// produceTo appends one partition's records, under a transaction
// verification when verified is set. With acks=all the ISR must meet
// min.insync.replicas first (NOT_ENOUGH_REPLICAS), as in Kafka. Internal
// topics take appends only with internalAllowed (the admin client ID).
// handleProduce has checked that the partition exists.
func (c *conn) produceTo(topic string, partition int32, records []byte, acksAll, internalAllowed bool, verified *verifiedAppend) (*replica.Partition, replica.AppendResult, error) {
	if verified != nil {
		defer verified.p.EndVerification(verified.producerID, verified.guard)
	}
	if isInternalTopic(topic) && !internalAllowed {
		// As Kafka: leadership and the batch's contents are never looked at.
		return nil, replica.AppendResult{}, fmt.Errorf("%s-%d: %w", topic, partition, errInternalTopic)
	}
	p, err := c.b.partitions.leaderFor(topic, partition)
	if err != nil {
		return nil, replica.AppendResult{}, err
	}
	if acksAll && !p.EnoughReplicas() {
		return nil, replica.AppendResult{}, replica.ErrNotEnoughReplicas
	}
	if acksAll && !c.b.lease.fresh() {
		// Cut off from etcd: another broker may lead this partition soon.
		return nil, replica.AppendResult{}, errNotLeader
	}
	var res replica.AppendResult
	if verified != nil && verified.p == p {
		res, err = p.AppendVerified(records, verified.guard)
	} else if verified != nil {
		// Leadership moved between the check and the append: the guard
		// belongs to another incarnation of the partition.
		err = errNotLeader
	} else {
		res, err = p.AppendAsLeader(records)
	}
	if err == nil {
		c.b.metrics.bytesIn.Add(float64(len(records)))
	}
	return p, res, err
}

// addLeaderHints names the current leader of every partition that answers
// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and lists those leaders'
// endpoints (KIP-951, v10+), so the producer retries on the new leader
// without a metadata request first.
func addLeaderHints(c *conn, r *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) {
	if r.Version < 10 {
		return
	}
	hints := newLeaderHints(c)
	img := hints.img
	for ti := range resp.Topics {
		rt := &resp.Topics[ti]
		name := rt.Topic
		if r.Version >= 13 {
			name = ""
			if t := img.TopicsByID[rt.TopicID]; t != nil {
				name = t.Name
			}
		}
		for pi := range rt.Partitions {
			sp := &rt.Partitions[pi]
			if h, ok := hints.forPartition(name, sp.Partition, sp.ErrorCode); ok {
				sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = h.id, h.epoch
			}
		}
	}
	for _, n := range hints.nodes {
		b := kmsg.NewProduceResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = n.id, n.host, n.port, n.rack
		resp.Brokers = append(resp.Brokers, b)
	}
}

// setRecordErrors reports the records that refused a batch (KIP-467,
// v8+): each one's index in the batch and why, and Kafka's message for the
// whole batch.
func setRecordErrors(sp *kmsg.ProduceResponseTopicPartition, refused *batch.RecordErrors, version int16) {
	if version < 8 {
		return
	}
	sp.ErrorRecords = make([]kmsg.ProduceResponseTopicPartitionErrorRecord, len(refused.Records))
	for i, re := range refused.Records {
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset = re.Index
		er.ErrorMessage = kmsg.StringPtr(re.Message)
		sp.ErrorRecords[i] = er
	}
	sp.ErrorMessage = kmsg.StringPtr(refused.Message())
}

// produceErrorCode maps an append failure to its wire code (errorCode)
// and tells the operator of a corrupt batch. Below v13 a partition named
// by topic ID cannot exist, so UNKNOWN_TOPIC_ID is not an answer there.
func produceErrorCode(c *conn, topic string, partition int32, err error, version int16) int16 {
	if errors.Is(err, batch.ErrCorrupt) {
		c.warnBadInput("rejected corrupt record batch", err, "topic", topic, "partition", partition)
	}
	code := c.b.partitionErrorCode(err, "append", topic, partition)
	if code == kerr.UnknownTopicID.Code && version < 13 {
		return kerr.UnknownTopicOrPartition.Code
	}
	return code
}

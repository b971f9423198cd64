package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/protocol/batch"
	"github.com/kbroker/kbroker/storage"
)

// errorCodes is the one mapping from the Go errors of storage, replica,
// protocol/batch and this package to the Kafka error codes clients see.
// Errors are matched with errors.Is, so any wrapping with context keeps
// its code; the first match wins, so a more specific sentinel comes before
// a general one. An error none of these match (and that is not a
// *kerr.Error) is an I/O failure or a bug: it answers KAFKA_STORAGE_ERROR
// and is logged (see errorCode).
var errorCodes = []struct {
	err  error
	code *kerr.Error
}{
	// Where the partition is.
	{errUnknownPartition, kerr.UnknownTopicOrPartition},
	{errNotLeader, kerr.NotLeaderForPartition},
	{errMarkerNotLeader, kerr.NotLeaderForPartition},
	{replica.ErrNotLeader, kerr.NotLeaderForPartition},
	{replica.ErrNotFollower, kerr.NotLeaderForPartition},
	// A partition closed under a request was deleted or moved: the client
	// refreshes its metadata, as after a leader change.
	{replica.ErrClosed, kerr.NotLeaderForPartition},
	{storage.ErrClosed, kerr.NotLeaderForPartition},
	{replica.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{replica.ErrUnknownLeaderEpoch, kerr.UnknownLeaderEpoch},
	{replica.ErrNotReplica, kerr.ReplicaNotAvailable},
	{errInternalTopic, kerr.InvalidTopicException},

	// Replication of acks=all writes.
	{replica.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{replica.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{replica.ErrTimedOut, kerr.RequestTimedOut},
	{context.DeadlineExceeded, kerr.RequestTimedOut},

	// Reads.
	{storage.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},

	// What a produced batch carries.
	{batch.ErrTooLarge, kerr.MessageTooLarge},
	// A legacy (magic 0 or 1) batch: Kafka 4.x's ProduceRequest.validateRecords
	// answers INVALID_RECORD, not UNSUPPORTED_FOR_MESSAGE_FORMAT.
	{batch.ErrUnsupportedMagic, kerr.InvalidRecord},
	{batch.ErrInvalidRecord, kerr.InvalidRecord},
	{batch.ErrInvalidTimestamp, kerr.InvalidTimestamp},
	{batch.ErrCorrupt, kerr.CorruptMessage},
	{storage.ErrRecordBatchTooLarge, kerr.RecordListTooLarge},

	// Producer state: idempotence and transactions.
	{storage.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{storage.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{storage.ErrInvalidTxnState, kerr.InvalidTxnState},
	{storage.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced},

	// The log or its dir failed. Both were logged where they happened
	// (storage's one line, the dir going offline), so they are expected
	// answers here, not logged again per request.
	{storage.ErrLogFailed, kerr.KafkaStorageError},
	{errLogDirOffline, kerr.KafkaStorageError},
	// A file that does not parse is a bug or damage nobody logged yet.
	{storage.ErrCorruptFile, kerr.KafkaStorageError},
}

// errorCode turns err into the Kafka error code a response carries: 0 for
// nil, a *kerr.Error's own code, the code of the first sentinel in
// errorCodes that err wraps, and otherwise KAFKA_STORAGE_ERROR. unexpected
// reports that last case and a log failure, which the operator must hear
// of; the rest are conditions clients cause or recover from.
func errorCode(err error) (code int16, unexpected bool) {
	if err == nil {
		return 0, false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code, false
	}
	for _, m := range errorCodes {
		if errors.Is(err, m.err) {
			// A file that does not parse is the one mapped error nobody
			// logged where it happened.
			return m.code.Code, errors.Is(err, storage.ErrCorruptFile)
		}
	}
	return kerr.KafkaStorageError.Code, true
}

// partitionErrorCode is errorCode for a partition-level answer: an
// unexpected error is logged once here, with what the request was doing,
// and an unknown partition addressed by topic ID (topic empty; Fetch v13+,
// Produce v13+) answers UNKNOWN_TOPIC_ID.
func (b *Broker) partitionErrorCode(err error, what, topic string, partition int32) int16 {
	code, unexpected := errorCode(err)
	if unexpected {
		b.logger.Error(what+" failed", "topic", topic, "partition", partition, "err", err)
	}
	if code == kerr.UnknownTopicOrPartition.Code && topic == "" {
		return kerr.UnknownTopicID.Code
	}
	return code
}

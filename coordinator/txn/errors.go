package txn

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Sentinel errors; wrapped with context, test with errors.Is.
var (
	// ErrClosed reports a shard that was closed (it no longer leads its
	// partition). Requests answer NOT_COORDINATOR.
	ErrClosed = errors.New("txn: shard closed")
	// ErrAlreadyLoaded reports a second Load of one shard.
	ErrAlreadyLoaded = errors.New("txn: shard already loaded")
	// ErrCorruptLog reports __transaction_state bytes that do not parse as
	// record batches, or a read that makes no progress.
	ErrCorruptLog = errors.New("txn: corrupt __transaction_state data")
	// ErrInvalidConfig reports a Config that Validate refuses.
	ErrInvalidConfig = errors.New("txn: invalid config")
)

// Error codes used throughout, named for readability.
var (
	errNone                     int16 = 0
	errNotCoordinator                 = kerr.NotCoordinator.Code
	errCoordinatorNotAvailable        = kerr.CoordinatorNotAvailable.Code
	errInvalidRequest                 = kerr.InvalidRequest.Code
	errInvalidTxnTimeout              = kerr.InvalidTransactionTimeout.Code
	errConcurrentTransactions         = kerr.ConcurrentTransactions.Code
	errProducerFenced                 = kerr.ProducerFenced.Code
	errInvalidProducerEpoch           = kerr.InvalidProducerEpoch.Code
	errInvalidProducerIDMapping       = kerr.InvalidProducerIDMapping.Code
	errInvalidTxnState                = kerr.InvalidTxnState.Code
	errTransactionAbortable           = kerr.TransactionAbortable.Code
	errTransactionalIDNotFound        = kerr.TransactionalIDNotFound.Code
)

// appendErrorCode maps a failed Log.Append to the code a transaction write
// answers, as Kafka's TransactionStateManager.appendTransactionToLog does:
// replication and placement problems are COORDINATOR_NOT_AVAILABLE, a lost
// leadership or storage failure NOT_COORDINATOR, a too-large write
// UNKNOWN_SERVER_ERROR. An error without a Kafka code is treated as
// COORDINATOR_NOT_AVAILABLE (retriable), a closed shard as NOT_COORDINATOR.
func appendErrorCode(err error) int16 {
	if errors.Is(err, ErrClosed) {
		return errNotCoordinator
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return errCoordinatorNotAvailable
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return errCoordinatorNotAvailable
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return errNotCoordinator
	case kerr.MessageTooLarge, kerr.RecordListTooLarge:
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}

// allocErrorCode maps a failed ProducerIDAllocator.Next: a *kerr.Error
// chooses its own code, anything else is COORDINATOR_LOAD_IN_PROGRESS,
// what Kafka's producer ID manager throws while it has no block at hand
// (retriable, without a coordinator lookup).
func allocErrorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.CoordinatorLoadInProgress.Code
}

// fencedCompat turns PRODUCER_FENCED into INVALID_PRODUCER_EPOCH for
// request versions that predate KIP-588 (InitProducerId < 4,
// AddPartitionsToTxn / AddOffsetsToTxn / EndTxn < 2), as Kafka's handlers
// do: older clients only know the latter.
func fencedCompat(code int16, old bool) int16 {
	if old && code == errProducerFenced {
		return errInvalidProducerEpoch
	}
	return code
}

package group

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Sentinel errors; wrapped with context, test with errors.Is.
var (
	// ErrClosed reports a shard that was closed (it no longer leads its
	// partition). Requests answer NOT_COORDINATOR.
	ErrClosed = errors.New("group: shard closed")
	// ErrAlreadyLoaded reports a second Load of one shard.
	ErrAlreadyLoaded = errors.New("group: shard already loaded")
	// ErrCorruptLog reports __consumer_offsets bytes that do not parse as
	// record batches, or a read that makes no progress.
	ErrCorruptLog = errors.New("group: corrupt __consumer_offsets data")
	// ErrInvalidConfig reports a Config that Validate refuses.
	ErrInvalidConfig = errors.New("group: invalid config")
)

// appendErrorCode maps a failed Log.Append to the code a group write
// answers, as Kafka's GroupMetadataManager.storeGroup does: replication and
// placement problems are COORDINATOR_NOT_AVAILABLE, a lost leadership or
// storage failure NOT_COORDINATOR, a too-large write UNKNOWN_SERVER_ERROR.
// An error that carries no Kafka code is treated as COORDINATOR_NOT_AVAILABLE
// (retriable), and a closed shard as NOT_COORDINATOR.
func appendErrorCode(err error, forOffsets bool) int16 {
	if errors.Is(err, ErrClosed) {
		return kerr.NotCoordinator.Code
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		if forOffsets {
			return kerr.InvalidCommitOffsetSize.Code
		}
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}

// Error codes used throughout, named for readability.
var (
	errCoordinatorNotAvailable   = kerr.CoordinatorNotAvailable.Code
	errInvalidGroupID            = kerr.InvalidGroupID.Code
	errUnknownMemberID           = kerr.UnknownMemberID.Code
	errFencedInstanceID          = kerr.FencedInstanceID.Code
	errIllegalGeneration         = kerr.IllegalGeneration.Code
	errRebalanceInProgress       = kerr.RebalanceInProgress.Code
	errInconsistentGroupProtocol = kerr.InconsistentGroupProtocol.Code
)

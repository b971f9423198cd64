package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/protocol/batch"
	"github.com/kbroker/kbroker/storage"
)

// TestErrorCodeOfEverySentinel walks every sentinel error of storage,
// replica, protocol/batch and the broker to the Kafka code a client gets,
// each wrapped twice with context as the layers wrap it (a comparison with
// == instead of errors.Is once turned OFFSET_OUT_OF_RANGE into
// KAFKA_STORAGE_ERROR and hung every consumer past retention). The
// expectations are written out here, independently of the mapping, and
// every row of the mapping must appear here.
func TestErrorCodeOfEverySentinel(t *testing.T) {
	want := []struct {
		err        error
		code       *kerr.Error
		unexpected bool
	}{
		{errUnknownPartition, kerr.UnknownTopicOrPartition, false},
		{errNotLeader, kerr.NotLeaderForPartition, false},
		{errMarkerNotLeader, kerr.NotLeaderForPartition, false},
		{replica.ErrNotLeader, kerr.NotLeaderForPartition, false},
		{replica.ErrNotFollower, kerr.NotLeaderForPartition, false},
		{replica.ErrClosed, kerr.NotLeaderForPartition, false},
		{storage.ErrClosed, kerr.NotLeaderForPartition, false},
		{replica.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch, false},
		{replica.ErrUnknownLeaderEpoch, kerr.UnknownLeaderEpoch, false},
		{replica.ErrNotReplica, kerr.ReplicaNotAvailable, false},
		{errInternalTopic, kerr.InvalidTopicException, false},
		{replica.ErrNotEnoughReplicas, kerr.NotEnoughReplicas, false},
		{replica.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend, false},
		{replica.ErrTimedOut, kerr.RequestTimedOut, false},
		{context.DeadlineExceeded, kerr.RequestTimedOut, false},
		{storage.ErrOffsetOutOfRange, kerr.OffsetOutOfRange, false},
		{batch.ErrTooLarge, kerr.MessageTooLarge, false},
		{batch.ErrUnsupportedMagic, kerr.InvalidRecord, false},
		{batch.ErrInvalidRecord, kerr.InvalidRecord, false},
		{batch.ErrInvalidTimestamp, kerr.InvalidTimestamp, false},
		{batch.ErrCorrupt, kerr.CorruptMessage, false},
		{storage.ErrRecordBatchTooLarge, kerr.RecordListTooLarge, false},
		{storage.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber, false},
		{storage.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch, false},
		{storage.ErrInvalidTxnState, kerr.InvalidTxnState, false},
		{storage.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced, false},
		{storage.ErrLogFailed, kerr.KafkaStorageError, false},
		{errLogDirOffline, kerr.KafkaStorageError, false},
		{storage.ErrCorruptFile, kerr.KafkaStorageError, true},
	}
	tested := map[error]bool{}
	for _, w := range want {
		tested[w.err] = true
		wrapped := fmt.Errorf("outer context: %w", fmt.Errorf("inner context: %w", w.err))
		code, unexpected := errorCode(wrapped)
		if code != w.code.Code || unexpected != w.unexpected {
			t.Errorf("%q: code %s (unexpected %v), want %s (unexpected %v)",
				w.err, kerr.ErrorForCode(code), unexpected, w.code, w.unexpected)
		}
	}
	for _, m := range errorCodes {
		if !tested[m.err] {
			t.Errorf("the mapping has %q → %s, which this test does not check", m.err, m.code)
		}
	}

	if code, unexpected := errorCode(nil); code != 0 || unexpected {
		t.Errorf("nil: code %d (unexpected %v), want 0", code, unexpected)
	}
	// A wire code chosen by a handler passes through as itself.
	if code, unexpected := errorCode(fmt.Errorf("ctx: %w", kerr.InvalidRequiredAcks)); code != kerr.InvalidRequiredAcks.Code || unexpected {
		t.Errorf("kerr.InvalidRequiredAcks: code %s (unexpected %v)", kerr.ErrorForCode(code), unexpected)
	}
	// Anything else is an I/O failure or a bug: the operator must hear of it.
	if code, unexpected := errorCode(errors.New("read /data/t-0/0.log: input/output error")); code != kerr.KafkaStorageError.Code || !unexpected {
		t.Errorf("an unknown error: code %s (unexpected %v), want KAFKA_STORAGE_ERROR, unexpected", kerr.ErrorForCode(code), unexpected)
	}
}

// TestPartitionErrorCodeByTopicID: a partition addressed by a topic ID
// that no topic has answers UNKNOWN_TOPIC_ID, one addressed by name
// UNKNOWN_TOPIC_OR_PARTITION.
func TestPartitionErrorCodeByTopicID(t *testing.T) {
	b := &Broker{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if code := b.partitionErrorCode(errUnknownPartition, "fetch", "", 0); code != kerr.UnknownTopicID.Code {
		t.Errorf("by topic ID: %s, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(code))
	}
	if code := b.partitionErrorCode(errUnknownPartition, "fetch", "t", 0); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("by name: %s, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(code))
	}
}

// TestFetchOutOfRange: a fetch past the log end answers OFFSET_OUT_OF_RANGE
// (not KAFKA_STORAGE_ERROR) and, as Kafka's ReplicaManager answers a failed
// read, no offsets: high watermark, last stable offset and log start -1.
func TestFetchOutOfRange(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "oor", 1, nil)
	produceRaw(t, cl, 11, "oor", 0, makeBatch(-1, -1, -1, 5, time.Now().UnixMilli()))
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "oor"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes, rp.LastFetchedEpoch = 0, 1000, -1, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	p := rawRequest(t, cl, req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at 1000 of a 5-record log: %s, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(p.ErrorCode))
	}
	if p.HighWatermark != -1 || p.LastStableOffset != -1 || p.LogStartOffset != -1 {
		t.Errorf("offsets %d/%d/%d with the error, want -1/-1/-1", p.HighWatermark, p.LastStableOffset, p.LogStartOffset)
	}
}

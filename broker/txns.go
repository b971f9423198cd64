package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/coordinator/txn"
)

// transactionTopic is Kafka's internal topic for transaction state.
const transactionTopic = "__transaction_state"

// txnShards runs the transaction coordinator: one coordinator/txn shard per
// __transaction_state partition this broker leads.
type txnShards struct {
	*shardSet[*txn.Shard]
}

func newTxnShards(b *Broker) *txnShards {
	t := &txnShards{}
	t.shardSet = newShardSet(b, "transaction", func() internalTopic {
		cfg := b.cfg
		return internalTopic{
			name:       transactionTopic,
			partitions: cfg.TransactionStateLogNumPartitions,
			rf:         cfg.TransactionStateLogReplicationFactor,
			rfKey:      "transaction.state.log.replication.factor",
			configs: map[string]string{
				"cleanup.policy":      "compact",
				"compression.type":    "uncompressed",
				"segment.bytes":       fmt.Sprint(cfg.TransactionStateLogSegmentBytes),
				"min.insync.replicas": fmt.Sprint(cfg.TransactionStateLogMinIsr),
			},
		}
	}, func(p, leaderEpoch int32, part *replica.Partition, logger *slog.Logger) *txn.Shard {
		return txn.NewShard(p, leaderEpoch, partitionLog{part}, b.producerIDs, markerWriter{b}, t.config(), logger)
	})
	b.metrics.registerTransactionGauge(func() int {
		n := 0
		for _, sh := range t.all() {
			n += sh.OngoingOverTimeout()
		}
		return n
	})
	return t
}

func (t *txnShards) config() txn.Config {
	cfg := t.b.cfg
	c := txn.DefaultConfig()
	c.NumPartitions = cfg.TransactionStateLogNumPartitions
	c.MaxTimeout = time.Duration(cfg.TransactionMaxTimeoutMs) * time.Millisecond
	c.TransactionalIDExpiration = time.Duration(cfg.TransactionalIDExpirationMs) * time.Millisecond
	c.AbortTimedOutInterval = time.Duration(cfg.TransactionAbortTimedOutTransactionCleanupIntervalMs) * time.Millisecond
	c.RemoveExpiredInterval = time.Duration(cfg.TransactionRemoveExpiredTransactionCleanupIntervalMs) * time.Millisecond
	c.OnTimedOutAbort = func(string, int64, int16) { t.b.metrics.txnTimedOut.Inc() }
	return c
}

// shardFor returns the shard coordinating transactionalID.
func (t *txnShards) shardFor(ctx context.Context, transactionalID string) (*txn.Shard, *kerr.Error) {
	return t.shardForKey(ctx, transactionalID, txn.PartitionFor)
}

// coordinatorNode is the broker coordinating transactionalID.
func (t *txnShards) coordinatorNode(ctx context.Context, transactionalID string) (int32, *kerr.Error) {
	return t.shardSet.coordinatorNode(ctx, transactionalID, txn.PartitionFor)
}

// markerWriter writes transaction markers to the partitions this broker
// leads. Markers for __consumer_offsets partitions also complete the
// transactional offset commits in the group coordinator.
type markerWriter struct{ b *Broker }

// errMarkerNotLeader means a marker's partition is led elsewhere; the
// coordinator retries after the metadata moves.
var errMarkerNotLeader = errors.New("broker: transaction marker for a partition this broker does not lead")

func (m markerWriter) WriteMarkers(ctx context.Context, markers []txn.Marker) error {
	remote := map[int32][]txn.Marker{}
	img := m.b.view.Image()
	for _, mk := range markers {
		leader := int32(-1)
		if t := img.Topics[mk.Topic]; t != nil && int(mk.Partition) < len(t.Partitions) {
			leader = t.Partitions[mk.Partition].State.Leader
		}
		if leader >= 0 && leader != m.b.nodeID {
			remote[leader] = append(remote[leader], mk)
			continue
		}
		if err := m.b.writeMarker(mk.Topic, mk.Partition, mk.ProducerID, mk.ProducerEpoch, mk.Commit, mk.CoordinatorEpoch); err != nil {
			return err
		}
	}
	for leader, ms := range remote {
		if err := m.b.interBroker.writeMarkersRemote(ctx, leader, ms); err != nil {
			return err
		}
	}
	return nil
}

// writeMarker appends one commit or abort marker to a hosted partition.
func (b *Broker) writeMarker(topic string, partition int32, producerID int64, epoch int16, commit bool, coordinatorEpoch int32) error {
	p, err := b.partitions.leaderFor(topic, partition)
	if errors.Is(err, errUnknownPartition) {
		return nil // the topic was deleted: nothing to mark
	}
	if err != nil {
		return fmt.Errorf("%w: %s-%d", errMarkerNotLeader, topic, partition)
	}
	if _, err := p.AppendControl(producerID, epoch, commit, coordinatorEpoch); err != nil {
		return fmt.Errorf("write %s marker to %s-%d: %w", markerKind(commit), topic, partition, err)
	}
	if topic == offsetsTopic {
		// Transactional offset commits of this producer become visible
		// (or are dropped) in the group coordinator.
		if sh, ok := b.groups.shard(partition); ok {
			sh.CompleteTransaction(producerID, commit)
		}
	}
	return nil
}

func markerKind(commit bool) string {
	if commit {
		return "commit"
	}
	return "abort"
}

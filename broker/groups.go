package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/coordinator/group"
)

// offsetsTopic is Kafka's internal topic for group metadata and offsets.
const offsetsTopic = "__consumer_offsets"

// groupShards runs the group coordinator: one coordinator/group shard per
// __consumer_offsets partition this broker leads.
type groupShards struct {
	*shardSet[*group.Shard]
}

func newGroupShards(b *Broker) *groupShards {
	g := &groupShards{}
	g.shardSet = newShardSet(b, "group", func() internalTopic {
		cfg := b.cfg
		return internalTopic{
			name:       offsetsTopic,
			partitions: cfg.OffsetsTopicNumPartitions,
			rf:         cfg.OffsetsTopicReplicationFactor,
			rfKey:      "offsets.topic.replication.factor",
			configs: map[string]string{
				"cleanup.policy":   "compact",
				"compression.type": "producer",
				"segment.bytes":    fmt.Sprint(cfg.OffsetsTopicSegmentBytes),
			},
		}
	}, func(p, _ int32, part *replica.Partition, logger *slog.Logger) *group.Shard {
		return group.NewShard(p, partitionLog{part}, g.config(), logger)
	})
	return g
}

func (g *groupShards) config() group.Config {
	cfg := g.b.cfg
	c := group.DefaultConfig()
	c.NumPartitions = cfg.OffsetsTopicNumPartitions
	c.InitialRebalanceDelay = time.Duration(cfg.GroupInitialRebalanceDelayMs) * time.Millisecond
	c.MinSessionTimeout = time.Duration(cfg.GroupMinSessionTimeoutMs) * time.Millisecond
	c.MaxSessionTimeout = time.Duration(cfg.GroupMaxSessionTimeoutMs) * time.Millisecond
	c.MaxSize = int(cfg.GroupMaxSize)
	c.OffsetsRetention = time.Duration(cfg.OffsetsRetentionMinutes) * time.Minute
	c.OffsetsRetentionCheckInterval = time.Duration(cfg.OffsetsRetentionCheckIntervalMs) * time.Millisecond
	c.OffsetMetadataMaxBytes = int(cfg.OffsetMetadataMaxBytes)
	c.TopicExists = func(topic string, partition int32) bool {
		t := g.b.view.Image().Topics[topic]
		return t != nil && partition >= 0 && int(partition) < len(t.Partitions)
	}
	c.Topics = func() []group.TopicMeta {
		img := g.b.view.Image()
		out := make([]group.TopicMeta, 0, len(img.Topics))
		for _, t := range img.Topics {
			out = append(out, group.TopicMeta{Name: t.Name, ID: t.ID, Partitions: int32(len(t.Partitions))})
		}
		return out
	}
	return c
}

// shardFor returns the shard coordinating groupID (see shardSet.shardForKey).
func (g *groupShards) shardFor(ctx context.Context, groupID string) (*group.Shard, *kerr.Error) {
	return g.shardForKey(ctx, groupID, group.PartitionFor)
}

// coordinatorNode is the broker coordinating groupID.
func (g *groupShards) coordinatorNode(ctx context.Context, groupID string) (int32, *kerr.Error) {
	return g.shardSet.coordinatorNode(ctx, groupID, group.PartitionFor)
}

// allShards lists the running shards (ListGroups asks each).
func (g *groupShards) allShards() []*group.Shard { return g.all() }

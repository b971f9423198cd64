package group

import (
	"math"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Config holds the group coordinator settings, named after Kafka's broker
// configs. DefaultConfig returns Kafka's defaults.
type Config struct {
	// NumPartitions is offsets.topic.num.partitions. The shard does not use
	// it to reject groups (the broker routes with the topic's real partition
	// count); it is kept for PartitionFor callers and logs.
	NumPartitions int32
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: how long
	// the first rebalance of an Empty group waits for more members.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout are
	// group.min.session.timeout.ms / group.max.session.timeout.ms.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// MaxSize is group.max.size.
	MaxSize int
	// OffsetsRetention is offsets.retention.minutes.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is offsets.retention.check.interval.ms.
	OffsetsRetentionCheckInterval time.Duration
	// OffsetMetadataMaxBytes is offset.metadata.max.bytes.
	OffsetMetadataMaxBytes int
	// NewMemberJoinTimeout bounds how long a new member may wait in
	// JoinGroup (Kafka's fixed 5 minutes, GroupCoordinator
	// NewMemberJoinTimeoutMs); tests shorten it.
	NewMemberJoinTimeout time.Duration
	// Now is the clock for commit and state timestamps and offset
	// expiry; nil means time.Now. Timers (sessions, rebalances) use real
	// time.
	Now func() time.Time
	// TopicExists, if set, is asked for each partition of OffsetCommit and
	// OffsetDelete; false answers UNKNOWN_TOPIC_OR_PARTITION as Kafka's
	// handlers do. Nil means the broker checks topics itself.
	TopicExists func(topic string, partition int32) bool

	// ConsumerSessionTimeout is group.consumer.session.timeout.ms: a
	// KIP-848 member that sends no heartbeat for this long is fenced.
	ConsumerSessionTimeout time.Duration
	// ConsumerHeartbeatInterval is group.consumer.heartbeat.interval.ms,
	// returned to KIP-848 members in every heartbeat response.
	ConsumerHeartbeatInterval time.Duration
	// ConsumerMaxSize is group.consumer.max.size.
	ConsumerMaxSize int
	// ConsumerAssignors is group.consumer.assignors: the server-side
	// assignors members may name; the first is the default. Known names
	// are "uniform" and "range".
	ConsumerAssignors []string
	// Topics, if set, returns the cluster's topics (from the metadata
	// image). KIP-848 groups resolve subscriptions and compute assignments
	// from it; nil means no topic exists.
	Topics func() []TopicMeta
}

// TopicMeta is what the consumer group protocol needs to know of a topic.
type TopicMeta struct {
	Name       string
	ID         [16]byte
	Partitions int32
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		NumPartitions:                 50,
		InitialRebalanceDelay:         3 * time.Second,
		MinSessionTimeout:             6 * time.Second,
		MaxSessionTimeout:             30 * time.Minute,
		MaxSize:                       math.MaxInt32,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
		NewMemberJoinTimeout:          5 * time.Minute,
		ConsumerSessionTimeout:        45 * time.Second,
		ConsumerHeartbeatInterval:     5 * time.Second,
		ConsumerMaxSize:               math.MaxInt32,
		ConsumerAssignors:             []string{assignorUniform, assignorRange},
	}
}

// Validate reports settings Kafka would refuse.
func (c Config) Validate() error {
	var p runtime.Problems
	p.Reject(c.MinSessionTimeout < 0 || c.MaxSessionTimeout < c.MinSessionTimeout,
		"group.min.session.timeout.ms %v must be >= 0 and <= group.max.session.timeout.ms %v", c.MinSessionTimeout, c.MaxSessionTimeout)
	p.Reject(c.MaxSize < 1, "group.max.size %d must be >= 1", c.MaxSize)
	p.Reject(c.InitialRebalanceDelay < 0, "group.initial.rebalance.delay.ms %v must be >= 0", c.InitialRebalanceDelay)
	p.Reject(c.OffsetsRetention <= 0, "offsets.retention.minutes %v must be > 0", c.OffsetsRetention)
	p.Reject(c.OffsetsRetentionCheckInterval <= 0, "offsets.retention.check.interval.ms %v must be > 0", c.OffsetsRetentionCheckInterval)
	p.Reject(c.OffsetMetadataMaxBytes < 0, "offset.metadata.max.bytes %d must be >= 0", c.OffsetMetadataMaxBytes)
	p.Reject(c.ConsumerSessionTimeout < 0 || c.ConsumerHeartbeatInterval < 0 ||
		(c.ConsumerSessionTimeout > 0 && c.ConsumerHeartbeatInterval >= c.ConsumerSessionTimeout),
		"group.consumer.heartbeat.interval.ms %v must be >= 0 and below group.consumer.session.timeout.ms %v", c.ConsumerHeartbeatInterval, c.ConsumerSessionTimeout)
	for _, a := range c.ConsumerAssignors {
		p.Reject(a != assignorUniform && a != assignorRange, "group.consumer.assignors: unknown assignor %q (known: uniform, range)", a)
	}
	return p.Err(ErrInvalidConfig)
}

// withDefaults fills zero values that would make the shard misbehave.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	runtime.SetDefault(&c.MaxSize, d.MaxSize)
	runtime.SetDefault(&c.OffsetsRetention, d.OffsetsRetention)
	runtime.SetDefault(&c.OffsetsRetentionCheckInterval, d.OffsetsRetentionCheckInterval)
	runtime.SetDefault(&c.NewMemberJoinTimeout, d.NewMemberJoinTimeout)
	runtime.SetDefault(&c.ConsumerSessionTimeout, d.ConsumerSessionTimeout)
	runtime.SetDefault(&c.ConsumerHeartbeatInterval, d.ConsumerHeartbeatInterval)
	runtime.SetDefault(&c.ConsumerMaxSize, d.ConsumerMaxSize)
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.ConsumerAssignors) == 0 {
		c.ConsumerAssignors = d.ConsumerAssignors
	}
	return c
}

// PartitionFor is the __consumer_offsets partition coordinating groupID:
// Kafka's Utils.abs(groupId.hashCode()) % numPartitions (see
// runtime.PartitionFor).
func PartitionFor(groupID string, numPartitions int32) int32 {
	return runtime.PartitionFor(groupID, numPartitions)
}

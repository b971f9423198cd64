package config

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Values Kafka's validators accept for enumerated keys.
var (
	compressionTypes = []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}
	timestampTypes   = []string{"CreateTime", "LogAppendTime"}
	cleanupPolicies  = []string{"compact", "delete"}
	logLevels        = []string{"debug", "info", "warn", "error"}
)

// RackAwareReplicaSelector is the replica.selector.class of Kafka's rack-aware
// selector, the one selector kbroker implements (Kafka loads any Java class
// named there; kbroker cannot).
const RackAwareReplicaSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector"

func validReplicaSelector(v string) error {
	if v == "" || v == RackAwareReplicaSelector {
		return nil
	}
	return fmt.Errorf("kbroker implements only %s (or empty for leader-only reads); custom selector classes cannot be loaded", RackAwareReplicaSelector)
}

// Kafka's minimum segment size: LegacyRecord.RECORD_OVERHEAD_V0.
const minSegmentBytes = 14

// Compression level ranges, from Kafka's CompressionType.
var (
	gzipLevels = intRange{bits: 32, min: 1, max: 9, extra: []int64{-1}}
	lz4Levels  = between(32, 1, 17)
	zstdLevels = between(32, -131072, 22)
)

// brokerKeys is every broker key kbroker implements, in Help order.
var brokerKeys = []keyDef{
	// Broker
	withAliases(numKey(groupBroker, "node.id", "NodeID", atLeast(32, -1), func(c *Config) *int32 { return &c.NodeID },
		"This broker's ID; -1 allocates one from etcd, starting at reserved.broker.max.id+1 (1001)."), "broker.id"),
	numKey(groupBroker, "reserved.broker.max.id", "ReservedBrokerMaxID", atLeast(32, 0), func(c *Config) *int32 { return &c.ReservedBrokerMaxID },
		"Highest ID that may be configured by hand; generated IDs start above it."),
	stringKey(groupBroker, "broker.rack", "BrokerRack", nil, func(c *Config) *string { return &c.BrokerRack },
		"Rack of this broker, used to spread replicas; empty means none."),
	boolKey(groupBroker, "delete.topic.enable", "DeleteTopicEnable", func(c *Config) *bool { return &c.DeleteTopicEnable },
		"Whether DeleteTopics may delete topics."),
	boolKey(groupBroker, "auto.create.topics.enable", "AutoCreateTopicsEnable", func(c *Config) *bool { return &c.AutoCreateTopicsEnable },
		"Create a topic when Metadata asks for an unknown one and allows creation."),
	numKey(groupBroker, "num.partitions", "NumPartitions", atLeast(32, 1), func(c *Config) *int32 { return &c.NumPartitions },
		"Partition count for auto-created topics and for CreateTopics asking for -1."),
	numKey(groupBroker, "default.replication.factor", "DefaultReplicationFactor", atLeast(32, 1), func(c *Config) *int32 { return &c.DefaultReplicationFactor },
		"Replication factor for auto-created topics and for CreateTopics asking for -1."),
	numKey(groupBroker, "min.insync.replicas", "MinInsyncReplicas", atLeast(32, 1), func(c *Config) *int32 { return &c.MinInsyncReplicas },
		"Fewest in-sync replicas an acks=all produce needs before it fails with NOT_ENOUGH_REPLICAS."),
	numKey(groupBroker, "broker.session.timeout.ms", "BrokerSessionTimeoutMs", atLeast(32, 1), func(c *Config) *int32 { return &c.BrokerSessionTimeoutMs },
		"How long a silent broker keeps its registration (etcd lease TTL) before it is fenced."),
	numKey(groupBroker, "broker.heartbeat.interval.ms", "BrokerHeartbeatIntervalMs", atLeast(32, 1), func(c *Config) *int32 { return &c.BrokerHeartbeatIntervalMs },
		"How often the broker renews its registration lease."),
	{
		name: "log.level", group: groupBroker, typ: kmsg.ConfigTypeString, typeName: "string", field: "LogLevel",
		allowed: "one of " + strings.Join(logLevels, ", "),
		doc:     "kbroker's own log verbosity (not a Kafka key).",
		set: func(c *Config, raw string) error {
			v := strings.ToLower(raw)
			if oneOf("log.level", v, logLevels) != nil {
				return &InvalidValueError{Key: "log.level", Value: raw, Reason: "must be one of " + strings.Join(logLevels, ", ")}
			}
			c.LogLevel = v
			return nil
		},
		get:   func(c *Config) *string { return strp(c.LogLevel) },
		check: func(c *Config) error { return oneOf("log.level", strings.ToLower(c.LogLevel), logLevels) },
	},

	// Listeners
	{
		name: "listeners", group: groupListeners, typ: kmsg.ConfigTypeString, typeName: "list", field: "Listeners",
		allowed: "NAME://host:port,...",
		doc:     "Addresses to accept connections on; an empty host binds every interface.",
		set: func(c *Config, raw string) error {
			ls, err := parseListeners(raw)
			if err != nil {
				return &InvalidValueError{Key: "listeners", Value: raw, Reason: fmt.Sprintf("%v; must be %s", err, listenerForm)}
			}
			c.Listeners = ls
			return nil
		},
		get: func(c *Config) *string { return strp(formatListeners(c.Listeners)) },
	},
	{
		name: "advertised.listeners", group: groupListeners, typ: kmsg.ConfigTypeString, typeName: "list", field: "AdvertisedListeners",
		allowed: "NAME://host:port,...",
		doc:     "Addresses given to clients; unset means listeners, an empty host means this machine's hostname.",
		set: func(c *Config, raw string) error {
			ls, err := parseListeners(raw)
			if err != nil {
				return &InvalidValueError{Key: "advertised.listeners", Value: raw, Reason: fmt.Sprintf("%v; must be %s", err, listenerForm)}
			}
			c.AdvertisedListeners = ls
			return nil
		},
		get: func(c *Config) *string {
			if c.AdvertisedListeners == nil {
				return nil
			}
			return strp(formatListeners(c.AdvertisedListeners))
		},
	},
	{
		name: "listener.security.protocol.map", group: groupListeners, typ: kmsg.ConfigTypeString, typeName: "string", field: "ListenerSecurityProtocolMap",
		allowed: "NAME:PROTOCOL,...",
		doc:     "Security protocol of each listener name; only PLAINTEXT listeners are served today.",
		set: func(c *Config, raw string) error {
			m, err := parseProtocolMap(raw)
			if err != nil {
				return &InvalidValueError{Key: "listener.security.protocol.map", Value: raw, Reason: fmt.Sprintf("%v; must be a comma-separated list of NAME:PROTOCOL", err)}
			}
			c.ListenerSecurityProtocolMap = m
			return nil
		},
		get: func(c *Config) *string { return strp(formatProtocolMap(c.ListenerSecurityProtocolMap)) },
	},
	{
		name: "inter.broker.listener.name", group: groupListeners, typ: kmsg.ConfigTypeString, typeName: "string", field: "InterBrokerListenerName",
		doc: "Listener other brokers connect to; unset means the one named by security.inter.broker.protocol.",
		set: func(c *Config, raw string) error {
			c.InterBrokerListenerName = strings.ToUpper(raw)
			return nil
		},
		get: func(c *Config) *string {
			if c.InterBrokerListenerName == "" {
				return nil
			}
			return strp(c.InterBrokerListenerName)
		},
	},
	stringKey(groupListeners, "security.inter.broker.protocol", "SecurityInterBrokerProtocol", securityProtocols, func(c *Config) *string { return &c.SecurityInterBrokerProtocol },
		"Protocol between brokers when inter.broker.listener.name is unset; only PLAINTEXT works today."),
	numKey(groupListeners, "connections.max.idle.ms", "ConnectionsMaxIdleMs", anyInt(64), func(c *Config) *int64 { return &c.ConnectionsMaxIdleMs },
		"Close connections idle this long; negative never closes them."),

	// Log
	withFallback(csvKey(groupLog, "log.dirs", "LogDirs", "comma-separated paths", nil, func(c *Config) *[]string { return &c.LogDirs },
		"Directories holding partition logs; the first also holds the embedded etcd. log.dirs wins over log.dir."), "log.dir"),
	numKey(groupLog, "log.segment.bytes", "LogSegmentBytes", atLeast(32, minSegmentBytes), func(c *Config) *int32 { return &c.LogSegmentBytes },
		"Roll a new segment when the active one reaches this size."),
	optNumKey(groupLog, "log.roll.ms", "LogRollTimeMillis", anyInt(64), func(c *Config) **int64 { return &c.LogRollTimeMillis },
		"Roll a new segment after this long; unset uses log.roll.hours."),
	numKey(groupLog, "log.roll.hours", "LogRollTimeHours", atLeast(32, 1), func(c *Config) *int32 { return &c.LogRollTimeHours },
		"Roll time in hours, used when log.roll.ms is unset."),
	optNumKey(groupLog, "log.roll.jitter.ms", "LogRollTimeJitterMillis", anyInt(64), func(c *Config) **int64 { return &c.LogRollTimeJitterMillis },
		"Random jitter taken off the roll time; unset uses log.roll.jitter.hours."),
	numKey(groupLog, "log.roll.jitter.hours", "LogRollTimeJitterHours", atLeast(32, 0), func(c *Config) *int32 { return &c.LogRollTimeJitterHours },
		"Roll jitter in hours, used when log.roll.jitter.ms is unset."),
	numKey(groupLog, "log.index.interval.bytes", "LogIndexIntervalBytes", atLeast(32, 0), func(c *Config) *int32 { return &c.LogIndexIntervalBytes },
		"Bytes of log between offset-index entries."),
	numKey(groupLog, "log.index.size.max.bytes", "LogIndexSizeMaxBytes", atLeast(32, 4), func(c *Config) *int32 { return &c.LogIndexSizeMaxBytes },
		"Largest offset or time index; a full index rolls the segment."),
	optNumKey(groupLog, "log.retention.ms", "LogRetentionTimeMillis", anyInt(64), func(c *Config) **int64 { return &c.LogRetentionTimeMillis },
		"Delete segments older than this; -1 keeps them forever. Beats minutes and hours."),
	optNumKey(groupLog, "log.retention.minutes", "LogRetentionTimeMinutes", anyInt(32), func(c *Config) **int32 { return &c.LogRetentionTimeMinutes },
		"Retention in minutes, used when log.retention.ms is unset."),
	numKey(groupLog, "log.retention.hours", "LogRetentionTimeHours", anyInt(32), func(c *Config) *int32 { return &c.LogRetentionTimeHours },
		"Retention in hours, used when neither log.retention.ms nor .minutes is set."),
	numKey(groupLog, "log.retention.bytes", "LogRetentionBytes", anyInt(64), func(c *Config) *int64 { return &c.LogRetentionBytes },
		"Delete old segments while a partition is larger than this; -1 means no size limit."),
	numKey(groupLog, "log.retention.check.interval.ms", "LogRetentionCheckIntervalMs", atLeast(64, 1), func(c *Config) *int64 { return &c.LogRetentionCheckIntervalMs },
		"How often retention is enforced."),
	numKey(groupLog, "log.segment.delete.delay.ms", "LogSegmentDeleteDelayMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogSegmentDeleteDelayMs },
		"How long a deleted segment's files linger before removal."),
	numKey(groupLog, "num.recovery.threads.per.data.dir", "NumRecoveryThreadsPerDataDir", atLeast(32, 1), func(c *Config) *int32 { return &c.NumRecoveryThreadsPerDataDir },
		"Partitions of one log dir opened (and recovered after a crash) at once at start."),
	numKey(groupLog, "log.flush.interval.messages", "LogFlushIntervalMessages", atLeast(64, 1), func(c *Config) *int64 { return &c.LogFlushIntervalMessages },
		"Fsync a partition after this many messages (default: leave it to the OS)."),
	optNumKey(groupLog, "log.flush.interval.ms", "LogFlushIntervalMillis", anyInt(64), func(c *Config) **int64 { return &c.LogFlushIntervalMillis },
		"Fsync a partition after data sat this long; unset uses log.flush.scheduler.interval.ms."),
	numKey(groupLog, "log.flush.scheduler.interval.ms", "LogFlushSchedulerIntervalMs", anyInt(64), func(c *Config) *int64 { return &c.LogFlushSchedulerIntervalMs },
		"How often the flusher looks for partitions to fsync."),
	stringKey(groupLog, "log.message.timestamp.type", "LogMessageTimestampType", timestampTypes, func(c *Config) *string { return &c.LogMessageTimestampType },
		"Keep the producer's timestamps (CreateTime) or stamp the append time (LogAppendTime)."),
	numKey(groupLog, "log.message.timestamp.difference.max.ms", "LogMessageTimestampDifferenceMaxMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogMessageTimestampDifferenceMaxMs },
		"Deprecated: fallback for the before/after limits below when they keep their defaults."),
	numKey(groupLog, "log.message.timestamp.before.max.ms", "LogMessageTimestampBeforeMaxMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogMessageTimestampBeforeMaxMs },
		"Reject CreateTime records this much older than the broker clock."),
	numKey(groupLog, "log.message.timestamp.after.max.ms", "LogMessageTimestampAfterMaxMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogMessageTimestampAfterMaxMs },
		"Reject CreateTime records this much newer than the broker clock."),
	boolKey(groupLog, "log.message.downconversion.enable", "LogMessageDownconversionEnable", func(c *Config) *bool { return &c.LogMessageDownconversionEnable },
		"Topic default for message.downconversion.enable (kbroker never down-converts)."),
	stringKey(groupLog, "compression.type", "CompressionType", compressionTypes, func(c *Config) *string { return &c.CompressionType },
		"Topic default codec; producer keeps whatever the producer sent."),
	numKey(groupLog, "compression.gzip.level", "CompressionGzipLevel", gzipLevels, func(c *Config) *int32 { return &c.CompressionGzipLevel },
		"Topic default gzip level when compression.type=gzip."),
	numKey(groupLog, "compression.lz4.level", "CompressionLz4Level", lz4Levels, func(c *Config) *int32 { return &c.CompressionLz4Level },
		"Topic default lz4 level when compression.type=lz4."),
	numKey(groupLog, "compression.zstd.level", "CompressionZstdLevel", zstdLevels, func(c *Config) *int32 { return &c.CompressionZstdLevel },
		"Topic default zstd level when compression.type=zstd."),
	listKey(groupLog, "log.cleanup.policy", "LogCleanupPolicy", cleanupPolicies, func(c *Config) *[]string { return &c.LogCleanupPolicy },
		"Topic default cleanup: delete old segments, compact by key, or both."),
	boolKey(groupLog, "log.cleaner.enable", "LogCleanerEnable", func(c *Config) *bool { return &c.LogCleanerEnable },
		"Run the log cleaner for compacted topics."),
	numKey(groupLog, "log.cleaner.delete.retention.ms", "LogCleanerDeleteRetentionMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogCleanerDeleteRetentionMs },
		"Topic default: how long compaction keeps tombstones."),
	numKey(groupLog, "log.cleaner.min.compaction.lag.ms", "LogCleanerMinCompactionLagMs", atLeast(64, 0), func(c *Config) *int64 { return &c.LogCleanerMinCompactionLagMs },
		"Topic default: records younger than this are never compacted."),
	numKey(groupLog, "log.cleaner.max.compaction.lag.ms", "LogCleanerMaxCompactionLagMs", atLeast(64, 1), func(c *Config) *int64 { return &c.LogCleanerMaxCompactionLagMs },
		"Topic default: records older than this are compacted soon."),
	{
		name: "log.cleaner.min.cleanable.ratio", group: groupLog, typ: kmsg.ConfigTypeDouble, typeName: "double", field: "LogCleanerMinCleanableRatio",
		allowed: "between 0 and 1",
		doc:     "Topic default: compact once this share of the log is dirty.",
		set: func(c *Config, raw string) error {
			v, err := parseRatio("log.cleaner.min.cleanable.ratio", raw)
			if err == nil {
				c.LogCleanerMinCleanableRatio = v
			}
			return err
		},
		get: func(c *Config) *string { return strp(formatDouble(c.LogCleanerMinCleanableRatio)) },
		check: func(c *Config) error {
			_, err := parseRatio("log.cleaner.min.cleanable.ratio", formatDouble(c.LogCleanerMinCleanableRatio))
			return err
		},
	},
	boolKey(groupLog, "log.preallocate", "LogPreallocate", func(c *Config) *bool { return &c.LogPreallocate },
		"Topic default: preallocate segment files."),

	// Limits
	numKey(groupLimits, "message.max.bytes", "MessageMaxBytes", atLeast(32, 0), func(c *Config) *int32 { return &c.MessageMaxBytes },
		"Largest record batch accepted (topic default for max.message.bytes)."),
	numKey(groupLimits, "socket.request.max.bytes", "SocketRequestMaxBytes", atLeast(32, 1), func(c *Config) *int32 { return &c.SocketRequestMaxBytes },
		"Largest request frame; a bigger one closes the connection."),
	numKey(groupLimits, "replica.fetch.max.bytes", "ReplicaFetchMaxBytes", atLeast(32, 0), func(c *Config) *int32 { return &c.ReplicaFetchMaxBytes },
		"Bytes a follower asks for per partition in one fetch."),
	numKey(groupLimits, "fetch.max.bytes", "FetchMaxBytes", atLeast(32, 1024), func(c *Config) *int32 { return &c.FetchMaxBytes },
		"Cap on the bytes of one Fetch response."),
	numKey(groupLimits, "offset.metadata.max.bytes", "OffsetMetadataMaxBytes", anyInt(32), func(c *Config) *int32 { return &c.OffsetMetadataMaxBytes },
		"Longest metadata string an offset commit may carry."),

	// Replication
	numKey(groupReplication, "replica.fetch.response.max.bytes", "ReplicaFetchResponseMaxBytes", atLeast(32, 0), func(c *Config) *int32 { return &c.ReplicaFetchResponseMaxBytes },
		"Bytes a follower asks for in one whole fetch response."),
	numKey(groupReplication, "replica.fetch.wait.max.ms", "ReplicaFetchWaitMaxMs", anyInt(32), func(c *Config) *int32 { return &c.ReplicaFetchWaitMaxMs },
		"How long a follower fetch may wait on the leader for data."),
	numKey(groupReplication, "replica.fetch.min.bytes", "ReplicaFetchMinBytes", anyInt(32), func(c *Config) *int32 { return &c.ReplicaFetchMinBytes },
		"Bytes a follower fetch waits for before returning."),
	numKey(groupReplication, "replica.fetch.backoff.ms", "ReplicaFetchBackoffMs", atLeast(32, 0), func(c *Config) *int32 { return &c.ReplicaFetchBackoffMs },
		"Pause after a failed follower fetch."),
	numKey(groupReplication, "replica.socket.timeout.ms", "ReplicaSocketTimeoutMs", anyInt(32), func(c *Config) *int32 { return &c.ReplicaSocketTimeoutMs },
		"Network timeout of follower fetches."),
	numKey(groupReplication, "num.replica.fetchers", "NumReplicaFetchers", atLeast(32, 1), func(c *Config) *int32 { return &c.NumReplicaFetchers },
		"Fetcher connections per source broker."),
	numKey(groupReplication, "replica.lag.time.max.ms", "ReplicaLagTimeMaxMs", anyInt(64), func(c *Config) *int64 { return &c.ReplicaLagTimeMaxMs },
		"A follower not caught up for this long leaves the ISR."),
	numKey(groupReplication, "replica.high.watermark.checkpoint.interval.ms", "ReplicaHighWatermarkCheckpointIntervalMs", anyInt(64), func(c *Config) *int64 { return &c.ReplicaHighWatermarkCheckpointIntervalMs },
		"How often high watermarks are saved to disk."),
	boolKey(groupReplication, "unclean.leader.election.enable", "UncleanLeaderElectionEnable", func(c *Config) *bool { return &c.UncleanLeaderElectionEnable },
		"Allow an out-of-sync replica to lead when no ISR member is alive (loses data)."),
	checkedStringKey(groupReplication, "replica.selector.class", "ReplicaSelectorClass", "empty or "+RackAwareReplicaSelector,
		validReplicaSelector, func(c *Config) *string { return &c.ReplicaSelectorClass },
		"Where consumers that send client.rack read from (KIP-392): empty, the leader; "+RackAwareReplicaSelector+", a replica in the consumer's rack."),
	boolKey(groupReplication, "auto.leader.rebalance.enable", "AutoLeaderRebalanceEnable", func(c *Config) *bool { return &c.AutoLeaderRebalanceEnable },
		"Move leadership back to preferred replicas in the background."),
	numKey(groupReplication, "leader.imbalance.per.broker.percentage", "LeaderImbalancePerBrokerPercentage", anyInt(32), func(c *Config) *int32 { return &c.LeaderImbalancePerBrokerPercentage },
		"Rebalance a broker's leaders once this percentage is misplaced."),
	numKey(groupReplication, "leader.imbalance.check.interval.seconds", "LeaderImbalanceCheckIntervalSeconds", atLeast(64, 1), func(c *Config) *int64 { return &c.LeaderImbalanceCheckIntervalSeconds },
		"How often leader balance is checked."),

	// Groups and transactions
	numKey(groupCoordinators, "offsets.topic.num.partitions", "OffsetsTopicNumPartitions", atLeast(32, 1), func(c *Config) *int32 { return &c.OffsetsTopicNumPartitions },
		"Partitions of __consumer_offsets (fixed once the topic exists)."),
	numKey(groupCoordinators, "offsets.topic.replication.factor", "OffsetsTopicReplicationFactor", atLeast(16, 1), func(c *Config) *int16 { return &c.OffsetsTopicReplicationFactor },
		"Replication factor of __consumer_offsets."),
	numKey(groupCoordinators, "offsets.topic.segment.bytes", "OffsetsTopicSegmentBytes", atLeast(32, 1), func(c *Config) *int32 { return &c.OffsetsTopicSegmentBytes },
		"Segment size of __consumer_offsets."),
	numKey(groupCoordinators, "offsets.retention.minutes", "OffsetsRetentionMinutes", atLeast(32, 1), func(c *Config) *int32 { return &c.OffsetsRetentionMinutes },
		"Keep committed offsets of an empty group this long."),
	numKey(groupCoordinators, "offsets.retention.check.interval.ms", "OffsetsRetentionCheckIntervalMs", atLeast(64, 1), func(c *Config) *int64 { return &c.OffsetsRetentionCheckIntervalMs },
		"How often expired offsets are removed."),
	numKey(groupCoordinators, "offsets.commit.timeout.ms", "OffsetsCommitTimeoutMs", atLeast(32, 1), func(c *Config) *int32 { return &c.OffsetsCommitTimeoutMs },
		"How long an offset commit waits for __consumer_offsets replication."),
	numKey(groupCoordinators, "group.initial.rebalance.delay.ms", "GroupInitialRebalanceDelayMs", anyInt(32), func(c *Config) *int32 { return &c.GroupInitialRebalanceDelayMs },
		"Wait this long for more members before a new group's first rebalance."),
	numKey(groupCoordinators, "group.min.session.timeout.ms", "GroupMinSessionTimeoutMs", anyInt(32), func(c *Config) *int32 { return &c.GroupMinSessionTimeoutMs },
		"Shortest session timeout a group member may ask for."),
	numKey(groupCoordinators, "group.max.session.timeout.ms", "GroupMaxSessionTimeoutMs", anyInt(32), func(c *Config) *int32 { return &c.GroupMaxSessionTimeoutMs },
		"Longest session timeout a group member may ask for."),
	numKey(groupCoordinators, "group.max.size", "GroupMaxSize", atLeast(32, 1), func(c *Config) *int32 { return &c.GroupMaxSize },
		"Most members one consumer group may have."),
	numKey(groupCoordinators, "transaction.state.log.num.partitions", "TransactionStateLogNumPartitions", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionStateLogNumPartitions },
		"Partitions of __transaction_state (fixed once the topic exists)."),
	numKey(groupCoordinators, "transaction.state.log.replication.factor", "TransactionStateLogReplicationFactor", atLeast(16, 1), func(c *Config) *int16 { return &c.TransactionStateLogReplicationFactor },
		"Replication factor of __transaction_state."),
	numKey(groupCoordinators, "transaction.state.log.min.isr", "TransactionStateLogMinIsr", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionStateLogMinIsr },
		"min.insync.replicas of __transaction_state."),
	numKey(groupCoordinators, "transaction.state.log.segment.bytes", "TransactionStateLogSegmentBytes", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionStateLogSegmentBytes },
		"Segment size of __transaction_state."),
	boolKey(groupCoordinators, "transaction.partition.verification.enable", "TransactionPartitionVerificationEnable", func(c *Config) *bool { return &c.TransactionPartitionVerificationEnable },
		"Before the first transactional batch of a producer (transactions v1) lands on a partition, ask the transaction coordinator that the partition is in the transaction (KIP-890 part 1), so a late or stray write cannot open a hanging transaction."),
	numKey(groupCoordinators, "transaction.max.timeout.ms", "TransactionMaxTimeoutMs", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionMaxTimeoutMs },
		"Longest transaction timeout a producer may ask for."),
	numKey(groupCoordinators, "transactional.id.expiration.ms", "TransactionalIDExpirationMs", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionalIDExpirationMs },
		"Forget a transactional ID idle this long."),
	numKey(groupCoordinators, "transaction.abort.timed.out.transaction.cleanup.interval.ms", "TransactionAbortTimedOutTransactionCleanupIntervalMs", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionAbortTimedOutTransactionCleanupIntervalMs },
		"How often timed-out transactions are aborted."),
	numKey(groupCoordinators, "transaction.remove.expired.transaction.cleanup.interval.ms", "TransactionRemoveExpiredTransactionCleanupIntervalMs", atLeast(32, 1), func(c *Config) *int32 { return &c.TransactionRemoveExpiredTransactionCleanupIntervalMs },
		"How often expired transactional IDs are removed."),
	numKey(groupCoordinators, "producer.id.expiration.ms", "ProducerIDExpirationMs", atLeast(32, 1), func(c *Config) *int32 { return &c.ProducerIDExpirationMs },
		"Forget an idempotent producer's state after this long without writes."),
	numKey(groupCoordinators, "producer.id.expiration.check.interval.ms", "ProducerIDExpirationCheckIntervalMs", atLeast(32, 1), func(c *Config) *int32 { return &c.ProducerIDExpirationCheckIntervalMs },
		"How often expired producer IDs are removed."),

	// etcd
	csvKey(groupEtcd, "etcd.endpoints", "EtcdEndpoints", "host:port or http(s):// URLs, comma separated", validEtcdEndpoint, func(c *Config) *[]string { return &c.EtcdEndpoints },
		"External etcd cluster to keep metadata in; empty embeds one etcd member under <first log dir>/etcd."),
	checkedStringKey(groupEtcd, "etcd.embed.client.url", "EtcdEmbedClientURL", "http://host:port", validHTTPURL, func(c *Config) *string { return &c.EtcdEmbedClientURL },
		"Client URL of the embedded etcd member."),
	checkedStringKey(groupEtcd, "etcd.embed.peer.url", "EtcdEmbedPeerURL", "http://host:port", validHTTPURL, func(c *Config) *string { return &c.EtcdEmbedPeerURL },
		"Peer URL of the embedded etcd member."),
	checkedStringKey(groupEtcd, "etcd.embed.initial.cluster", "EtcdEmbedInitialCluster", "name=http://host:port,... or empty", validInitialCluster, func(c *Config) *string { return &c.EtcdEmbedInitialCluster },
		"Members of a multi-member embedded etcd cluster, each named by its broker's node.id (1=http://10.0.0.1:2380,2=...,3=...), like a KRaft combined-mode quorum; empty runs a single member."),
	numKey(groupEtcd, "etcd.dial.timeout.ms", "EtcdDialTimeoutMs", atLeast(32, 1), func(c *Config) *int32 { return &c.EtcdDialTimeoutMs },
		"How long to wait when connecting to etcd."),

	// Metrics
	checkedStringKey(groupMetrics, "kbroker.metrics.listener", "MetricsListener", "host:port, or empty", func(v string) error {
		if v == "" {
			return nil
		}
		return validHostPort(v, true)
	}, func(c *Config) *string { return &c.MetricsListener },
		"host:port serving Prometheus metrics at /metrics (e.g. 127.0.0.1:9404); empty turns it off."),
	boolKey(groupMetrics, "kbroker.metrics.pprof.enable", "MetricsPprofEnable", func(c *Config) *bool { return &c.MetricsPprofEnable },
		"Also serve Go's profiler at /debug/pprof/ on kbroker.metrics.listener (for diagnosing CPU and memory; exposes internals, keep the listener private)."),
}

func withAliases(d keyDef, aliases ...string) keyDef {
	d.aliases = aliases
	return d
}

func withFallback(d keyDef, fallback string) keyDef {
	d.fallback = fallback
	return d
}

// listKey is a Kafka LIST key restricted to an enumeration.
func listKey(g group, name, field string, allowed []string, p func(*Config) *[]string, doc string) keyDef {
	return keyDef{
		name: name, group: g, typ: kmsg.ConfigTypeList, typeName: "list", field: field,
		allowed: "comma-separated list of " + strings.Join(allowed, ", "), doc: doc,
		set: func(c *Config, raw string) error {
			items := splitList(raw)
			if err := checkList(name, items, allowed); err != nil {
				return err
			}
			*p(c) = items
			return nil
		},
		get:   func(c *Config) *string { return strp(strings.Join(*p(c), ",")) },
		check: func(c *Config) error { return checkList(name, *p(c), allowed) },
	}
}

// validInitialCluster checks etcd's "name=peerURL,..." form.
func validInitialCluster(v string) error {
	if v == "" {
		return nil
	}
	for _, entry := range strings.Split(v, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || name == "" {
			return fmt.Errorf("entry %q is not name=http://host:port", entry)
		}
		if err := validHTTPURL(u); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
	}
	return nil
}

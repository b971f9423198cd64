package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"strings"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrHelp is returned by Parse for -h/--help: print Help() and exit 0.
	ErrHelp = errors.New("config: help requested")
	// ErrVersion is returned by Parse for --version: print the version and exit 0.
	ErrVersion = errors.New("config: version requested")
	// ErrUsage wraps command-line mistakes (unknown option, stray argument,
	// --override without a value).
	ErrUsage = errors.New("config: bad command line")
	// ErrInvalidConfig wraps every invalid value or inconsistent combination
	// of values, broker- or topic-level.
	ErrInvalidConfig = errors.New("config: invalid configuration")
	// ErrUnknownTopicConfig wraps a topic config name Kafka does not define.
	ErrUnknownTopicConfig = errors.New("config: unknown topic config")
)

// InvalidValueError reports a value a key does not accept. It matches
// ErrInvalidConfig under errors.Is.
type InvalidValueError struct {
	Key    string
	Value  string
	Reason string // what is allowed, e.g. "must be an integer >= 1"
}

func (e *InvalidValueError) Error() string {
	return fmt.Sprintf("invalid value %q for %s: %s", e.Value, e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *InvalidValueError) Is(target error) bool { return target == ErrInvalidConfig }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Config is the broker's static configuration. Field names follow the Kafka
// keys they come from; NewConfig fills in Kafka's defaults. Pointer fields are
// keys Kafka defines with no default (null): nil means "not set, derive from
// the fallback key".
type Config struct {
	// --- Broker ---

	// NodeID is node.id (alias broker.id). -1 asks etcd for a fresh ID
	// above reserved.broker.max.id, i.e. from 1001, as Kafka's broker.id
	// generation does.
	NodeID int32
	// ReservedBrokerMaxID is reserved.broker.max.id: configured IDs must not
	// exceed it and generated ones start above it.
	ReservedBrokerMaxID int32
	// BrokerRack is broker.rack; empty means no rack.
	BrokerRack string
	// DeleteTopicEnable is delete.topic.enable.
	DeleteTopicEnable bool
	// AutoCreateTopicsEnable is auto.create.topics.enable.
	AutoCreateTopicsEnable bool
	// NumPartitions is num.partitions, the partition count of auto-created
	// topics and of CreateTopics asking for -1 (KIP-464).
	NumPartitions int32
	// DefaultReplicationFactor is default.replication.factor.
	DefaultReplicationFactor int32
	// MinInsyncReplicas is min.insync.replicas.
	MinInsyncReplicas int32
	// BrokerSessionTimeoutMs is broker.session.timeout.ms: how long a broker
	// may go silent (its etcd lease TTL) before it is fenced.
	BrokerSessionTimeoutMs int32
	// BrokerHeartbeatIntervalMs is broker.heartbeat.interval.ms: how often
	// the lease is kept alive.
	BrokerHeartbeatIntervalMs int32
	// LogLevel is log.level (kbroker-specific): debug, info, warn or error.
	LogLevel string

	// --- Listeners ---

	// Listeners is listeners.
	Listeners []Listener
	// AdvertisedListeners is advertised.listeners; nil means "same as
	// Listeners" (the whole list, as in Kafka; the broker registers them
	// with port 0 as bound and an empty host as the machine's hostname).
	AdvertisedListeners []Listener
	// ListenerSecurityProtocolMap is listener.security.protocol.map, listener
	// name to security protocol, both upper-case.
	ListenerSecurityProtocolMap map[string]string
	// InterBrokerListenerName is inter.broker.listener.name; empty means the
	// listener named after SecurityInterBrokerProtocol. See InterBrokerListener.
	InterBrokerListenerName string
	// SecurityInterBrokerProtocol is security.inter.broker.protocol.
	SecurityInterBrokerProtocol string
	// ConnectionsMaxIdleMs is connections.max.idle.ms; negative never closes
	// idle connections.
	ConnectionsMaxIdleMs int64

	// --- Log ---

	// LogDirs is log.dirs (alias log.dir; log.dirs wins when both are set).
	LogDirs []string
	// LogSegmentBytes is log.segment.bytes.
	LogSegmentBytes int32
	// LogRollTimeMillis is log.roll.ms; nil falls back to LogRollTimeHours.
	LogRollTimeMillis *int64
	// LogRollTimeHours is log.roll.hours.
	LogRollTimeHours int32
	// LogRollTimeJitterMillis is log.roll.jitter.ms; nil falls back to
	// LogRollTimeJitterHours.
	LogRollTimeJitterMillis *int64
	// LogRollTimeJitterHours is log.roll.jitter.hours.
	LogRollTimeJitterHours int32
	// LogIndexIntervalBytes is log.index.interval.bytes.
	LogIndexIntervalBytes int32
	// LogIndexSizeMaxBytes is log.index.size.max.bytes.
	LogIndexSizeMaxBytes int32
	// LogRetentionTimeMillis is log.retention.ms; nil falls back to minutes.
	LogRetentionTimeMillis *int64
	// LogRetentionTimeMinutes is log.retention.minutes; nil falls back to hours.
	LogRetentionTimeMinutes *int32
	// LogRetentionTimeHours is log.retention.hours.
	LogRetentionTimeHours int32
	// LogRetentionBytes is log.retention.bytes; negative is unlimited.
	LogRetentionBytes int64
	// LogRetentionCheckIntervalMs is log.retention.check.interval.ms.
	LogRetentionCheckIntervalMs int64
	// LogSegmentDeleteDelayMs is log.segment.delete.delay.ms.
	LogSegmentDeleteDelayMs int64
	// NumRecoveryThreadsPerDataDir is num.recovery.threads.per.data.dir.
	NumRecoveryThreadsPerDataDir int32
	// LogFlushIntervalMessages is log.flush.interval.messages.
	LogFlushIntervalMessages int64
	// LogFlushIntervalMillis is log.flush.interval.ms; nil falls back to
	// LogFlushSchedulerIntervalMs.
	LogFlushIntervalMillis *int64
	// LogFlushSchedulerIntervalMs is log.flush.scheduler.interval.ms.
	LogFlushSchedulerIntervalMs int64
	// LogMessageTimestampType is log.message.timestamp.type: CreateTime or
	// LogAppendTime.
	LogMessageTimestampType string
	// LogMessageTimestampDifferenceMaxMs is the deprecated
	// log.message.timestamp.difference.max.ms, the fallback of the before/after
	// limits when those keep their defaults.
	LogMessageTimestampDifferenceMaxMs int64
	// LogMessageTimestampBeforeMaxMs is log.message.timestamp.before.max.ms.
	LogMessageTimestampBeforeMaxMs int64
	// LogMessageTimestampAfterMaxMs is log.message.timestamp.after.max.ms.
	LogMessageTimestampAfterMaxMs int64
	// LogMessageDownconversionEnable is log.message.downconversion.enable.
	LogMessageDownconversionEnable bool
	// CompressionType is compression.type: producer, uncompressed, gzip,
	// snappy, lz4 or zstd.
	CompressionType string
	// CompressionGzipLevel is compression.gzip.level.
	CompressionGzipLevel int32
	// CompressionLz4Level is compression.lz4.level.
	CompressionLz4Level int32
	// CompressionZstdLevel is compression.zstd.level.
	CompressionZstdLevel int32
	// LogCleanupPolicy is log.cleanup.policy: any of delete, compact.
	LogCleanupPolicy []string
	// LogCleanerEnable is log.cleaner.enable.
	LogCleanerEnable bool
	// LogCleanerDeleteRetentionMs is log.cleaner.delete.retention.ms.
	LogCleanerDeleteRetentionMs int64
	// LogCleanerMinCompactionLagMs is log.cleaner.min.compaction.lag.ms.
	LogCleanerMinCompactionLagMs int64
	// LogCleanerMaxCompactionLagMs is log.cleaner.max.compaction.lag.ms.
	LogCleanerMaxCompactionLagMs int64
	// LogCleanerMinCleanableRatio is log.cleaner.min.cleanable.ratio.
	LogCleanerMinCleanableRatio float64
	// LogPreallocate is log.preallocate.
	LogPreallocate bool

	// --- Limits ---

	// MessageMaxBytes is message.max.bytes, the largest record batch.
	MessageMaxBytes int32
	// SocketRequestMaxBytes is socket.request.max.bytes, the largest request.
	SocketRequestMaxBytes int32
	// ReplicaFetchMaxBytes is replica.fetch.max.bytes, per partition.
	ReplicaFetchMaxBytes int32
	// FetchMaxBytes is fetch.max.bytes, the cap on one Fetch response.
	FetchMaxBytes int32
	// OffsetMetadataMaxBytes is offset.metadata.max.bytes.
	OffsetMetadataMaxBytes int32

	// --- Replication ---

	// ReplicaFetchResponseMaxBytes is replica.fetch.response.max.bytes.
	ReplicaFetchResponseMaxBytes int32
	// ReplicaFetchWaitMaxMs is replica.fetch.wait.max.ms.
	ReplicaFetchWaitMaxMs int32
	// ReplicaFetchMinBytes is replica.fetch.min.bytes.
	ReplicaFetchMinBytes int32
	// ReplicaFetchBackoffMs is replica.fetch.backoff.ms.
	ReplicaFetchBackoffMs int32
	// ReplicaSocketTimeoutMs is replica.socket.timeout.ms.
	ReplicaSocketTimeoutMs int32
	// NumReplicaFetchers is num.replica.fetchers.
	NumReplicaFetchers int32
	// ReplicaLagTimeMaxMs is replica.lag.time.max.ms.
	ReplicaLagTimeMaxMs int64
	// ReplicaHighWatermarkCheckpointIntervalMs is
	// replica.high.watermark.checkpoint.interval.ms.
	ReplicaHighWatermarkCheckpointIntervalMs int64
	// UncleanLeaderElectionEnable is unclean.leader.election.enable.
	UncleanLeaderElectionEnable bool
	// ReplicaSelectorClass is replica.selector.class: empty (consumers read
	// from leaders) or RackAwareReplicaSelector (KIP-392).
	ReplicaSelectorClass string
	// AutoLeaderRebalanceEnable is auto.leader.rebalance.enable.
	AutoLeaderRebalanceEnable bool
	// LeaderImbalancePerBrokerPercentage is leader.imbalance.per.broker.percentage.
	LeaderImbalancePerBrokerPercentage int32
	// LeaderImbalanceCheckIntervalSeconds is leader.imbalance.check.interval.seconds.
	LeaderImbalanceCheckIntervalSeconds int64

	// --- Groups and transactions ---

	// OffsetsTopicNumPartitions is offsets.topic.num.partitions.
	OffsetsTopicNumPartitions int32
	// OffsetsTopicReplicationFactor is offsets.topic.replication.factor.
	OffsetsTopicReplicationFactor int16
	// OffsetsTopicSegmentBytes is offsets.topic.segment.bytes.
	OffsetsTopicSegmentBytes int32
	// OffsetsRetentionMinutes is offsets.retention.minutes.
	OffsetsRetentionMinutes int32
	// OffsetsRetentionCheckIntervalMs is offsets.retention.check.interval.ms.
	OffsetsRetentionCheckIntervalMs int64
	// OffsetsCommitTimeoutMs is offsets.commit.timeout.ms.
	OffsetsCommitTimeoutMs int32
	// GroupInitialRebalanceDelayMs is group.initial.rebalance.delay.ms.
	GroupInitialRebalanceDelayMs int32
	// GroupMinSessionTimeoutMs is group.min.session.timeout.ms.
	GroupMinSessionTimeoutMs int32
	// GroupMaxSessionTimeoutMs is group.max.session.timeout.ms.
	GroupMaxSessionTimeoutMs int32
	// GroupMaxSize is group.max.size.
	GroupMaxSize int32
	// TransactionStateLogNumPartitions is transaction.state.log.num.partitions.
	TransactionStateLogNumPartitions int32
	// TransactionStateLogReplicationFactor is
	// transaction.state.log.replication.factor.
	TransactionStateLogReplicationFactor int16
	// TransactionStateLogMinIsr is transaction.state.log.min.isr.
	TransactionStateLogMinIsr int32
	// TransactionStateLogSegmentBytes is transaction.state.log.segment.bytes.
	TransactionStateLogSegmentBytes int32
	// TransactionMaxTimeoutMs is transaction.max.timeout.ms.
	TransactionMaxTimeoutMs int32
	// TransactionPartitionVerificationEnable is
	// transaction.partition.verification.enable (KIP-890 part 1).
	TransactionPartitionVerificationEnable bool
	// TransactionalIDExpirationMs is transactional.id.expiration.ms.
	TransactionalIDExpirationMs int32
	// TransactionAbortTimedOutTransactionCleanupIntervalMs is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms.
	TransactionAbortTimedOutTransactionCleanupIntervalMs int32
	// TransactionRemoveExpiredTransactionCleanupIntervalMs is
	// transaction.remove.expired.transaction.cleanup.interval.ms.
	TransactionRemoveExpiredTransactionCleanupIntervalMs int32
	// ProducerIDExpirationMs is producer.id.expiration.ms.
	ProducerIDExpirationMs int32
	// ProducerIDExpirationCheckIntervalMs is
	// producer.id.expiration.check.interval.ms.
	ProducerIDExpirationCheckIntervalMs int32

	// --- etcd ---

	// EtcdEndpoints is etcd.endpoints; empty embeds a single-member etcd
	// under EtcdDataDir().
	EtcdEndpoints []string
	// EtcdEmbedClientURL is etcd.embed.client.url, where the embedded etcd
	// serves clients.
	EtcdEmbedClientURL string
	// EtcdEmbedPeerURL is etcd.embed.peer.url, where the embedded etcd
	// talks to peers.
	EtcdEmbedPeerURL string
	// EtcdEmbedInitialCluster is etcd.embed.initial.cluster: the members of
	// a multi-member embedded etcd cluster ("name=peerURL,..."), each named
	// by its broker's node.id; empty runs a single member.
	EtcdEmbedInitialCluster string
	// EtcdDialTimeoutMs is etcd.dial.timeout.ms.
	EtcdDialTimeoutMs int32

	// --- Metrics ---

	// MetricsListener is kbroker.metrics.listener, the host:port of the
	// Prometheus /metrics HTTP endpoint; empty turns it off.
	MetricsListener string
	// MetricsPprofEnable is kbroker.metrics.pprof.enable: serve
	// net/http/pprof on the metrics listener.
	MetricsPprofEnable bool

	// explicit records the keys Parse saw (canonical names), so
	// DescribeConfigs can tell a static setting from a default.
	explicit map[string]bool
}

// NewConfig returns Apache Kafka's defaults (and kbroker's for its own keys).
func NewConfig() *Config {
	return &Config{
		NodeID:                    -1,
		ReservedBrokerMaxID:       1000,
		DeleteTopicEnable:         true,
		AutoCreateTopicsEnable:    true,
		NumPartitions:             1,
		DefaultReplicationFactor:  1,
		MinInsyncReplicas:         1,
		BrokerSessionTimeoutMs:    9000,
		BrokerHeartbeatIntervalMs: 2000,
		LogLevel:                  "info",

		Listeners: []Listener{{Name: ProtocolPlaintext, Port: 9092}},
		ListenerSecurityProtocolMap: map[string]string{
			ProtocolPlaintext:     ProtocolPlaintext,
			ProtocolSSL:           ProtocolSSL,
			ProtocolSASLPlaintext: ProtocolSASLPlaintext,
			ProtocolSASLSSL:       ProtocolSASLSSL,
		},
		SecurityInterBrokerProtocol: ProtocolPlaintext,
		ConnectionsMaxIdleMs:        600000,

		LogDirs:                            []string{"/tmp/kafka-logs"},
		LogSegmentBytes:                    1 << 30,
		LogRollTimeHours:                   168,
		LogIndexIntervalBytes:              4096,
		LogIndexSizeMaxBytes:               10 << 20,
		LogRetentionTimeHours:              168,
		LogRetentionBytes:                  -1,
		LogRetentionCheckIntervalMs:        300000,
		LogSegmentDeleteDelayMs:            60000,
		NumRecoveryThreadsPerDataDir:       2,
		LogFlushIntervalMessages:           math.MaxInt64,
		LogFlushSchedulerIntervalMs:        math.MaxInt64,
		LogMessageTimestampType:            "CreateTime",
		LogMessageTimestampDifferenceMaxMs: math.MaxInt64,
		LogMessageTimestampBeforeMaxMs:     math.MaxInt64,
		LogMessageTimestampAfterMaxMs:      math.MaxInt64,
		LogMessageDownconversionEnable:     true,
		CompressionType:                    "producer",
		CompressionGzipLevel:               -1,
		CompressionLz4Level:                9,
		CompressionZstdLevel:               3,
		LogCleanupPolicy:                   []string{"delete"},
		LogCleanerEnable:                   true,
		LogCleanerDeleteRetentionMs:        86400000,
		LogCleanerMaxCompactionLagMs:       math.MaxInt64,
		LogCleanerMinCleanableRatio:        0.5,

		MessageMaxBytes:        1048588,
		SocketRequestMaxBytes:  100 << 20,
		FetchMaxBytes:          55 << 20,
		OffsetMetadataMaxBytes: 4096,

		ReplicaFetchMaxBytes:                     1 << 20,
		ReplicaFetchResponseMaxBytes:             10 << 20,
		ReplicaFetchWaitMaxMs:                    500,
		ReplicaFetchMinBytes:                     1,
		ReplicaFetchBackoffMs:                    1000,
		ReplicaSocketTimeoutMs:                   30000,
		NumReplicaFetchers:                       1,
		ReplicaLagTimeMaxMs:                      30000,
		ReplicaHighWatermarkCheckpointIntervalMs: 5000,
		AutoLeaderRebalanceEnable:                true,
		LeaderImbalancePerBrokerPercentage:       10,
		LeaderImbalanceCheckIntervalSeconds:      300,

		OffsetsTopicNumPartitions:                            50,
		OffsetsTopicReplicationFactor:                        3,
		OffsetsTopicSegmentBytes:                             100 << 20,
		OffsetsRetentionMinutes:                              10080,
		OffsetsRetentionCheckIntervalMs:                      600000,
		OffsetsCommitTimeoutMs:                               5000,
		GroupInitialRebalanceDelayMs:                         3000,
		GroupMinSessionTimeoutMs:                             6000,
		GroupMaxSessionTimeoutMs:                             1800000,
		GroupMaxSize:                                         math.MaxInt32,
		TransactionStateLogNumPartitions:                     50,
		TransactionStateLogReplicationFactor:                 3,
		TransactionStateLogMinIsr:                            2,
		TransactionStateLogSegmentBytes:                      100 << 20,
		TransactionMaxTimeoutMs:                              900000,
		TransactionPartitionVerificationEnable:               true,
		TransactionalIDExpirationMs:                          604800000,
		TransactionAbortTimedOutTransactionCleanupIntervalMs: 10000,
		TransactionRemoveExpiredTransactionCleanupIntervalMs: 3600000,
		ProducerIDExpirationMs:                               86400000,
		ProducerIDExpirationCheckIntervalMs:                  600000,

		EtcdEmbedClientURL: "http://127.0.0.1:2379",
		EtcdEmbedPeerURL:   "http://127.0.0.1:2380",
		EtcdDialTimeoutMs:  5000,
	}
}

const (
	msPerMinute = int64(60 * 1000)
	msPerHour   = 60 * msPerMinute
)

// LogRollMs is the segment roll time: log.roll.ms, else log.roll.hours.
func (c *Config) LogRollMs() int64 {
	if c.LogRollTimeMillis != nil {
		return *c.LogRollTimeMillis
	}
	return int64(c.LogRollTimeHours) * msPerHour
}

// LogRollJitterMs is the roll jitter: log.roll.jitter.ms, else
// log.roll.jitter.hours.
func (c *Config) LogRollJitterMs() int64 {
	if c.LogRollTimeJitterMillis != nil {
		return *c.LogRollTimeJitterMillis
	}
	return int64(c.LogRollTimeJitterHours) * msPerHour
}

// RetentionMs is the retention time: log.retention.ms, else
// log.retention.minutes, else log.retention.hours. Any negative result is
// returned as -1, unlimited, as Kafka does.
func (c *Config) RetentionMs() int64 {
	var ms int64
	switch {
	case c.LogRetentionTimeMillis != nil:
		ms = *c.LogRetentionTimeMillis
	case c.LogRetentionTimeMinutes != nil:
		ms = int64(*c.LogRetentionTimeMinutes) * msPerMinute
	default:
		ms = int64(c.LogRetentionTimeHours) * msPerHour
	}
	if ms < 0 {
		return -1
	}
	return ms
}

// FlushIntervalMs is the time-based flush interval: log.flush.interval.ms,
// else log.flush.scheduler.interval.ms.
func (c *Config) FlushIntervalMs() int64 {
	if c.LogFlushIntervalMillis != nil {
		return *c.LogFlushIntervalMillis
	}
	return c.LogFlushSchedulerIntervalMs
}

// EmbedEtcd reports whether the broker should run its own etcd member
// (etcd.endpoints is empty).
func (c *Config) EmbedEtcd() bool { return len(c.EtcdEndpoints) == 0 }

// EtcdDataDir is where the embedded etcd keeps its data: <first log dir>/etcd.
func (c *Config) EtcdDataDir() string {
	if len(c.LogDirs) == 0 {
		return ""
	}
	return filepath.Join(c.LogDirs[0], "etcd")
}

// SlogLevel is log.level as a slog.Level (info for anything unrecognised;
// Validate rejects those).
func (c *Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// IsSet reports whether key (a canonical name or alias) was set by the
// properties file or an override.
func (c *Config) IsSet(key string) bool {
	if d := lookupKey(key); d != nil {
		key = d.name
	}
	return c.explicit[key]
}

// Validate checks every value against its key's range and the rules that tie
// keys together. Parse calls it; call it yourself after changing fields.
func (c *Config) Validate() error {
	for _, d := range brokerKeys {
		if d.check == nil {
			continue
		}
		if err := d.check(c); err != nil {
			return err
		}
	}
	if c.NodeID != -1 && (c.NodeID < 0 || c.NodeID > c.ReservedBrokerMaxID) {
		return invalidf("node.id must be -1 (allocate one from etcd) or between 0 and reserved.broker.max.id (%d), got %d", c.ReservedBrokerMaxID, c.NodeID)
	}
	if len(c.LogDirs) == 0 {
		return invalidf("at least one log directory must be given in log.dirs or log.dir")
	}
	seen := map[string]bool{}
	for _, d := range c.LogDirs {
		if strings.TrimSpace(d) == "" {
			return invalidf("log.dirs: empty directory name")
		}
		clean := filepath.Clean(d)
		if seen[clean] {
			return invalidf("log.dirs: directory %s is listed twice", d)
		}
		seen[clean] = true
	}
	if ms := c.LogRollMs(); ms < 1 {
		return invalidf("log.roll.ms must be >= 1, got %d", ms)
	}
	if ms := c.LogRollJitterMs(); ms < 0 {
		return invalidf("log.roll.jitter.ms must be >= 0, got %d", ms)
	}
	if ms := c.RetentionMs(); ms == 0 {
		return invalidf("log.retention.ms must be -1 (unlimited) or >= 1, got 0")
	}
	if ms := c.FlushIntervalMs(); ms < 0 {
		return invalidf("log.flush.interval.ms must be >= 0, got %d", ms)
	}
	if c.LogCleanerMinCompactionLagMs > c.LogCleanerMaxCompactionLagMs {
		return invalidf("log.cleaner.min.compaction.lag.ms (%d) must not exceed log.cleaner.max.compaction.lag.ms (%d)", c.LogCleanerMinCompactionLagMs, c.LogCleanerMaxCompactionLagMs)
	}
	if c.ReplicaFetchWaitMaxMs > c.ReplicaSocketTimeoutMs {
		return invalidf("replica.socket.timeout.ms (%d) must be at least replica.fetch.wait.max.ms (%d)", c.ReplicaSocketTimeoutMs, c.ReplicaFetchWaitMaxMs)
	}
	if int64(c.ReplicaFetchWaitMaxMs) > c.ReplicaLagTimeMaxMs {
		return invalidf("replica.fetch.wait.max.ms (%d) must not exceed replica.lag.time.max.ms (%d)", c.ReplicaFetchWaitMaxMs, c.ReplicaLagTimeMaxMs)
	}
	if c.MetricsPprofEnable && c.MetricsListener == "" {
		return invalidf("kbroker.metrics.pprof.enable needs kbroker.metrics.listener (the profiler is served there)")
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if _, err := ResolveTopicConfig(c, nil); err != nil {
		return fmt.Errorf("broker defaults for topics: %w", err)
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }

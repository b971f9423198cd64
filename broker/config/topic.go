package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicConfigKey describes one topic-level key for DescribeConfigs.
type TopicConfigKey struct {
	Name string
	Type kmsg.ConfigType
	Doc  string
	// Synonyms are the broker keys that supply the default, highest
	// priority first (segment.ms: log.roll.ms, log.roll.hours). Empty when
	// the default is fixed.
	Synonyms []string
}

type topicKey struct {
	TopicConfigKey
	validate      func(key, raw string) error
	brokerDefault func(c *Config) string
}

// messageFormatVersion is what kbroker reports for the deprecated
// message.format.version: it only writes record batch v2, which Kafka 3.x
// reports as 3.0-IV1.
const messageFormatVersion = "3.0-IV1"

// kafkaVersions is every value Kafka 3.9 accepts for message.format.version
// (its MetadataVersionValidator): each inter-broker protocol version of
// MetadataVersion ("0.8.2", "0.10.0-IV1", "3.7-IV4", "4.0-IV1") and the
// release name of each production one ("0.10.0", "2.8", "3.9", not "4.0").
// Kafka 4.0 removed the key; a 4.x broker refuses it as an unknown topic
// config, whatever its value.
var kafkaVersions = func() map[string]bool {
	m := map[string]bool{"0.8.0": true, "0.8.1": true, "0.8.2": true, "0.9.0": true}
	for _, r := range []struct {
		release    string
		ivs        int  // internal versions IV0 .. IV<ivs-1>
		production bool // the release name alone is accepted
	}{
		{"0.10.0", 2, true}, {"0.10.1", 3, true}, {"0.10.2", 1, true}, {"0.11.0", 3, true},
		{"1.0", 1, true}, {"1.1", 1, true}, {"2.0", 2, true}, {"2.1", 3, true}, {"2.2", 2, true},
		{"2.3", 2, true}, {"2.4", 2, true}, {"2.5", 1, true}, {"2.6", 1, true}, {"2.7", 3, true},
		{"2.8", 2, true}, {"3.0", 2, true}, {"3.1", 1, true}, {"3.2", 1, true}, {"3.3", 4, true},
		{"3.4", 1, true}, {"3.5", 3, true}, {"3.6", 3, true}, {"3.7", 5, true}, {"3.8", 1, true},
		{"3.9", 1, true}, {"4.0", 2, false},
	} {
		for i := 0; i < r.ivs; i++ {
			m[fmt.Sprintf("%s-IV%d", r.release, i)] = true
		}
		if r.production {
			m[r.release] = true
		}
	}
	return m
}()

// kafkaVersionKey is the part of a version string Kafka looks up
// (MetadataVersion.fromVersionString): the first three dot-separated parts
// of a 0.x version, the first two of any other, the whole string when it
// has no more parts than that. So 0.10.0.0 is 0.10.0 and 2.8.1 is 2.8.
func kafkaVersionKey(v string) string {
	parts := strings.Split(v, ".")
	// Java's String.split drops trailing empty strings: "2.8." is two parts.
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	n := 2
	if strings.HasPrefix(v, "0.") {
		n = 3
	}
	if len(parts) <= n {
		return v
	}
	return strings.Join(parts[:n], ".")
}

var throttledReplicaPattern = regexp.MustCompile(`^([0-9]+:[0-9]+)?$`)

func tInt(r intRange) func(string, string) error {
	return func(key, raw string) error { _, err := r.parse(key, raw); return err }
}

func tBool(key, raw string) error { _, err := parseBool(key, raw); return err }

func tEnum(allowed []string) func(string, string) error {
	return func(key, raw string) error { return oneOf(key, raw, allowed) }
}

func tList(allowed []string) func(string, string) error {
	return func(key, raw string) error { return checkList(key, splitList(raw), allowed) }
}

func tRatio(key, raw string) error { _, err := parseRatio(key, raw); return err }

// tVersion accepts what Kafka 3.x accepts for message.format.version (see
// kafkaVersions); kbroker ignores the value, as Kafka does from
// inter.broker.protocol.version 3.0.
func tVersion(key, raw string) error {
	if !kafkaVersions[kafkaVersionKey(raw)] {
		return &InvalidValueError{Key: key, Value: raw, Reason: "not a valid Kafka version (such as 0.10.0, 0.10.0-IV1, 2.8 or 3.0-IV1)"}
	}
	return nil
}

func tThrottled(key, raw string) error {
	items := splitList(raw)
	if strings.Join(items, "") == "*" {
		return nil
	}
	for _, it := range items {
		if !throttledReplicaPattern.MatchString(it) {
			return &InvalidValueError{Key: key, Value: raw, Reason: "must be * or a list of partitionId:brokerId pairs"}
		}
	}
	return nil
}

// tRemoteStorage accepts only false: kbroker has no tiered storage, which
// Kafka reports the same way when the broker has it disabled.
func tRemoteStorage(key, raw string) error {
	v, err := parseBool(key, raw)
	if err == nil && v {
		return &InvalidValueError{Key: key, Value: raw, Reason: "tiered storage is not supported by this broker"}
	}
	return err
}

func i64(v int64) string                  { return strconv.FormatInt(v, 10) }
func itoa[T integer](v T) string          { return strconv.FormatInt(int64(v), 10) }
func btoa(v bool) string                  { return strconv.FormatBool(v) }
func fixed(v string) func(*Config) string { return func(*Config) string { return v } }

func tk(name string, typ kmsg.ConfigType, validate func(string, string) error, def func(*Config) string, doc string, synonyms ...string) topicKey {
	return topicKey{
		TopicConfigKey: TopicConfigKey{Name: name, Type: typ, Doc: doc, Synonyms: synonyms},
		validate:       validate,
		brokerDefault:  def,
	}
}

// topicKeys is every topic-level key of Kafka's LogConfig, with its
// validator and where its default comes from.
var topicKeys = []topicKey{
	tk("cleanup.policy", kmsg.ConfigTypeList, tList(cleanupPolicies), func(c *Config) string { return strings.Join(c.LogCleanupPolicy, ",") },
		"delete old segments, compact by key, or both", "log.cleanup.policy"),
	tk("compression.type", kmsg.ConfigTypeString, tEnum(compressionTypes), func(c *Config) string { return c.CompressionType },
		"codec of stored batches; producer keeps the producer's", "compression.type"),
	tk("compression.gzip.level", kmsg.ConfigTypeInt, tInt(gzipLevels), func(c *Config) string { return itoa(c.CompressionGzipLevel) },
		"gzip level when compression.type=gzip", "compression.gzip.level"),
	tk("compression.lz4.level", kmsg.ConfigTypeInt, tInt(lz4Levels), func(c *Config) string { return itoa(c.CompressionLz4Level) },
		"lz4 level when compression.type=lz4", "compression.lz4.level"),
	tk("compression.zstd.level", kmsg.ConfigTypeInt, tInt(zstdLevels), func(c *Config) string { return itoa(c.CompressionZstdLevel) },
		"zstd level when compression.type=zstd", "compression.zstd.level"),
	tk("delete.retention.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogCleanerDeleteRetentionMs) },
		"how long compaction keeps tombstones", "log.cleaner.delete.retention.ms"),
	tk("file.delete.delay.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogSegmentDeleteDelayMs) },
		"delay before a deleted segment's files are removed", "log.segment.delete.delay.ms"),
	tk("flush.messages", kmsg.ConfigTypeLong, tInt(atLeast(64, 1)), func(c *Config) string { return i64(c.LogFlushIntervalMessages) },
		"fsync after this many messages", "log.flush.interval.messages"),
	tk("flush.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.FlushIntervalMs()) },
		"fsync after data sat this long", "log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
	tk("follower.replication.throttled.replicas", kmsg.ConfigTypeList, tThrottled, fixed(""),
		"replicas whose follower-side replication is throttled"),
	tk("index.interval.bytes", kmsg.ConfigTypeInt, tInt(atLeast(32, 0)), func(c *Config) string { return itoa(c.LogIndexIntervalBytes) },
		"bytes of log between offset-index entries", "log.index.interval.bytes"),
	tk("leader.replication.throttled.replicas", kmsg.ConfigTypeList, tThrottled, fixed(""),
		"replicas whose leader-side replication is throttled"),
	tk("local.retention.bytes", kmsg.ConfigTypeLong, tInt(atLeast(64, -2)), fixed("-2"),
		"local size limit with tiered storage; -2 follows retention.bytes", "log.local.retention.bytes"),
	tk("local.retention.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, -2)), fixed("-2"),
		"local time limit with tiered storage; -2 follows retention.ms", "log.local.retention.ms"),
	tk("max.compaction.lag.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 1)), func(c *Config) string { return i64(c.LogCleanerMaxCompactionLagMs) },
		"records older than this are compacted soon", "log.cleaner.max.compaction.lag.ms"),
	tk("max.message.bytes", kmsg.ConfigTypeInt, tInt(atLeast(32, 0)), func(c *Config) string { return itoa(c.MessageMaxBytes) },
		"largest record batch accepted", "message.max.bytes"),
	tk("message.downconversion.enable", kmsg.ConfigTypeBoolean, tBool, func(c *Config) string { return btoa(c.LogMessageDownconversionEnable) },
		"whether old fetch versions get down-converted batches", "log.message.downconversion.enable"),
	tk("message.format.version", kmsg.ConfigTypeString, tVersion, fixed(messageFormatVersion),
		"deprecated; ignored, batches are always v2", "log.message.format.version"),
	tk("message.timestamp.after.max.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogMessageTimestampAfterMaxMs) },
		"reject CreateTime records this far ahead of the broker clock", "log.message.timestamp.after.max.ms"),
	tk("message.timestamp.before.max.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogMessageTimestampBeforeMaxMs) },
		"reject CreateTime records this far behind the broker clock", "log.message.timestamp.before.max.ms"),
	tk("message.timestamp.difference.max.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogMessageTimestampDifferenceMaxMs) },
		"deprecated fallback for the before/after limits", "log.message.timestamp.difference.max.ms"),
	tk("message.timestamp.type", kmsg.ConfigTypeString, tEnum(timestampTypes), func(c *Config) string { return c.LogMessageTimestampType },
		"CreateTime keeps producer timestamps, LogAppendTime stamps the append time", "log.message.timestamp.type"),
	tk("min.cleanable.dirty.ratio", kmsg.ConfigTypeDouble, tRatio, func(c *Config) string { return formatDouble(c.LogCleanerMinCleanableRatio) },
		"compact once this share of the log is dirty", "log.cleaner.min.cleanable.ratio"),
	tk("min.compaction.lag.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogCleanerMinCompactionLagMs) },
		"records younger than this are never compacted", "log.cleaner.min.compaction.lag.ms"),
	tk("min.insync.replicas", kmsg.ConfigTypeInt, tInt(atLeast(32, 1)), func(c *Config) string { return itoa(c.MinInsyncReplicas) },
		"fewest in-sync replicas for an acks=all produce", "min.insync.replicas"),
	tk("preallocate", kmsg.ConfigTypeBoolean, tBool, func(c *Config) string { return btoa(c.LogPreallocate) },
		"preallocate segment files", "log.preallocate"),
	tk("remote.log.copy.disable", kmsg.ConfigTypeBoolean, tBool, fixed("false"),
		"stop copying segments to tiered storage"),
	tk("remote.log.delete.on.disable", kmsg.ConfigTypeBoolean, tBool, fixed("false"),
		"delete tiered data when tiered storage is turned off"),
	tk("remote.storage.enable", kmsg.ConfigTypeBoolean, tRemoteStorage, fixed("false"),
		"tiered storage for the topic (unsupported: must be false)"),
	tk("retention.bytes", kmsg.ConfigTypeLong, tInt(anyInt(64)), func(c *Config) string { return i64(c.LogRetentionBytes) },
		"delete old segments while a partition is larger than this; -1 is no limit", "log.retention.bytes"),
	tk("retention.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, -1)), func(c *Config) string { return i64(c.RetentionMs()) },
		"delete segments older than this; -1 keeps them forever", "log.retention.ms", "log.retention.minutes", "log.retention.hours"),
	tk("segment.bytes", kmsg.ConfigTypeInt, tInt(atLeast(32, minSegmentBytes)), func(c *Config) string { return itoa(c.LogSegmentBytes) },
		"roll a new segment at this size", "log.segment.bytes"),
	tk("segment.index.bytes", kmsg.ConfigTypeInt, tInt(atLeast(32, 4)), func(c *Config) string { return itoa(c.LogIndexSizeMaxBytes) },
		"largest offset or time index", "log.index.size.max.bytes"),
	tk("segment.jitter.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 0)), func(c *Config) string { return i64(c.LogRollJitterMs()) },
		"random jitter taken off the roll time", "log.roll.jitter.ms", "log.roll.jitter.hours"),
	tk("segment.ms", kmsg.ConfigTypeLong, tInt(atLeast(64, 1)), func(c *Config) string { return i64(c.LogRollMs()) },
		"roll a new segment after this long", "log.roll.ms", "log.roll.hours"),
	tk("unclean.leader.election.enable", kmsg.ConfigTypeBoolean, tBool, func(c *Config) string { return btoa(c.UncleanLeaderElectionEnable) },
		"let an out-of-sync replica lead when no ISR member is alive", "unclean.leader.election.enable"),
}

var topicKeyIndex = func() map[string]*topicKey {
	m := make(map[string]*topicKey, len(topicKeys))
	for i := range topicKeys {
		m[topicKeys[i].Name] = &topicKeys[i]
	}
	return m
}()

// TopicConfigKeys lists every topic-level key, sorted by name.
func TopicConfigKeys() []TopicConfigKey {
	out := make([]TopicConfigKey, len(topicKeys))
	for i, k := range topicKeys {
		out[i] = k.TopicConfigKey
		out[i].Synonyms = append([]string(nil), k.Synonyms...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unknownTopicConfigError matches both ErrUnknownTopicConfig and
// ErrInvalidConfig: CreateTopics answers INVALID_CONFIG either way.
type unknownTopicConfigError struct{ key string }

func (e *unknownTopicConfigError) Error() string { return "unknown topic config name: " + e.key }

func (e *unknownTopicConfigError) Is(target error) bool {
	return target == ErrUnknownTopicConfig || target == ErrInvalidConfig
}

// ValidateTopicConfig checks one topic-level key and value as Kafka's
// LogConfig would. An unknown key yields an error matching
// ErrUnknownTopicConfig; a bad value an *InvalidValueError. Both match
// ErrInvalidConfig.
func ValidateTopicConfig(key, value string) error {
	k, ok := topicKeyIndex[key]
	if !ok {
		return &unknownTopicConfigError{key: key}
	}
	return k.validate(key, strings.TrimSpace(value))
}

// TopicDefaults is the broker-level default of every topic key, under topic
// key names, as DescribeConfigs and topic creation see them.
func (c *Config) TopicDefaults() map[string]string {
	m := make(map[string]string, len(topicKeys))
	for _, k := range topicKeys {
		m[k.Name] = k.brokerDefault(c)
	}
	return m
}

// CleanupPolicy is a topic's cleanup.policy.
type CleanupPolicy struct {
	Delete  bool // drop segments past retention
	Compact bool // keep only the latest record per key
}

func (p CleanupPolicy) String() string {
	var parts []string
	if p.Compact {
		parts = append(parts, "compact")
	}
	if p.Delete {
		parts = append(parts, "delete")
	}
	return strings.Join(parts, ",")
}

// TopicConfig is a topic's effective log configuration: broker defaults with
// the topic's overrides laid over them.
type TopicConfig struct {
	SegmentBytes       int32 // segment.bytes
	SegmentMs          int64 // segment.ms
	SegmentJitterMs    int64 // segment.jitter.ms
	SegmentIndexBytes  int32 // segment.index.bytes
	IndexIntervalBytes int32 // index.interval.bytes
	MaxMessageBytes    int32 // max.message.bytes
	FlushMessages      int64 // flush.messages
	FlushMs            int64 // flush.ms
	RetentionMs        int64 // retention.ms; -1 is unlimited
	RetentionBytes     int64 // retention.bytes; negative is unlimited
	FileDeleteDelayMs  int64 // file.delete.delay.ms
	// LogAppendTime is message.timestamp.type == LogAppendTime.
	LogAppendTime bool
	// MessageTimestampBeforeMaxMs and MessageTimestampAfterMaxMs are the
	// allowed skew of CreateTime timestamps, already falling back to the
	// deprecated message.timestamp.difference.max.ms as Kafka does.
	MessageTimestampBeforeMaxMs int64
	MessageTimestampAfterMaxMs  int64
	MinInsyncReplicas           int32         // min.insync.replicas
	CleanupPolicy               CleanupPolicy // cleanup.policy
	DeleteRetentionMs           int64         // delete.retention.ms
	MinCompactionLagMs          int64         // min.compaction.lag.ms
	MaxCompactionLagMs          int64         // max.compaction.lag.ms
	MinCleanableDirtyRatio      float64       // min.cleanable.dirty.ratio
	UncleanLeaderElectionEnable bool          // unclean.leader.election.enable
	CompressionType             string        // compression.type
	Preallocate                 bool          // preallocate
}

// ResolveTopicConfig lays a topic's overrides (topic key names) over the
// broker's topic defaults and checks the result. A nil broker means Kafka's
// defaults. Errors match ErrInvalidConfig (and ErrUnknownTopicConfig for an
// unknown key).
func ResolveTopicConfig(broker *Config, overrides map[string]string) (TopicConfig, error) {
	if broker == nil {
		broker = NewConfig()
	}
	m := broker.TopicDefaults()
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		if err := ValidateTopicConfig(k, overrides[k]); err != nil {
			return TopicConfig{}, err
		}
		m[k] = strings.TrimSpace(overrides[k])
	}
	for _, k := range topicKeys {
		if err := k.validate(k.Name, m[k.Name]); err != nil {
			return TopicConfig{}, err
		}
	}
	p := topicParser{m: m}
	tc := TopicConfig{
		SegmentBytes:                int32(p.int("segment.bytes")),
		SegmentMs:                   p.int("segment.ms"),
		SegmentJitterMs:             p.int("segment.jitter.ms"),
		SegmentIndexBytes:           int32(p.int("segment.index.bytes")),
		IndexIntervalBytes:          int32(p.int("index.interval.bytes")),
		MaxMessageBytes:             int32(p.int("max.message.bytes")),
		FlushMessages:               p.int("flush.messages"),
		FlushMs:                     p.int("flush.ms"),
		RetentionMs:                 p.int("retention.ms"),
		RetentionBytes:              p.int("retention.bytes"),
		FileDeleteDelayMs:           p.int("file.delete.delay.ms"),
		LogAppendTime:               m["message.timestamp.type"] == "LogAppendTime",
		MessageTimestampBeforeMaxMs: p.int("message.timestamp.before.max.ms"),
		MessageTimestampAfterMaxMs:  p.int("message.timestamp.after.max.ms"),
		MinInsyncReplicas:           int32(p.int("min.insync.replicas")),
		DeleteRetentionMs:           p.int("delete.retention.ms"),
		MinCompactionLagMs:          p.int("min.compaction.lag.ms"),
		MaxCompactionLagMs:          p.int("max.compaction.lag.ms"),
		UncleanLeaderElectionEnable: p.bool("unclean.leader.election.enable"),
		CompressionType:             m["compression.type"],
		Preallocate:                 p.bool("preallocate"),
	}
	tc.MinCleanableDirtyRatio = p.ratio("min.cleanable.dirty.ratio")
	for _, policy := range splitList(m["cleanup.policy"]) {
		switch policy {
		case "delete":
			tc.CleanupPolicy.Delete = true
		case "compact":
			tc.CleanupPolicy.Compact = true
		}
	}
	// The before/after limits fall back to the deprecated difference limit
	// while they keep their defaults (Kafka's LogConfig does the same).
	diff := p.int("message.timestamp.difference.max.ms")
	if tc.MessageTimestampBeforeMaxMs == math.MaxInt64 {
		tc.MessageTimestampBeforeMaxMs = diff
	}
	if tc.MessageTimestampAfterMaxMs == math.MaxInt64 {
		tc.MessageTimestampAfterMaxMs = diff
	}
	if p.err != nil {
		return TopicConfig{}, p.err
	}
	if tc.MinCompactionLagMs > tc.MaxCompactionLagMs {
		return TopicConfig{}, invalidf("min.compaction.lag.ms (%d) must not exceed max.compaction.lag.ms (%d)", tc.MinCompactionLagMs, tc.MaxCompactionLagMs)
	}
	return tc, nil
}

// topicParser reads already-validated values, keeping the first error in
// case a validator and a parser ever disagree.
type topicParser struct {
	m   map[string]string
	err error
}

func (p *topicParser) int(key string) int64 {
	v, err := strconv.ParseInt(p.m[key], 10, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, key, p.m[key], err)
	}
	return v
}

func (p *topicParser) bool(key string) bool {
	v, err := parseBool(key, p.m[key])
	if err != nil && p.err == nil {
		p.err = err
	}
	return v
}

func (p *topicParser) ratio(key string) float64 {
	v, err := parseRatio(key, p.m[key])
	if err != nil && p.err == nil {
		p.err = err
	}
	return v
}

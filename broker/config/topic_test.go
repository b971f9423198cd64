package config

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestValidateTopicConfig(t *testing.T) {
	valid := [][2]string{
		{"cleanup.policy", "compact,delete"}, {"cleanup.policy", "delete"}, {"cleanup.policy", ""},
		{"compression.type", "lz4"}, {"compression.type", "producer"}, {"compression.type", "uncompressed"},
		{"compression.gzip.level", "-1"}, {"compression.gzip.level", "9"}, {"compression.lz4.level", "17"},
		{"compression.zstd.level", "-131072"}, {"delete.retention.ms", "0"}, {"file.delete.delay.ms", "1"},
		{"flush.messages", "1"}, {"flush.ms", "0"}, {"index.interval.bytes", "0"},
		{"max.compaction.lag.ms", "1"}, {"max.message.bytes", "0"}, {"message.timestamp.type", "LogAppendTime"},
		{"message.timestamp.difference.max.ms", "0"}, {"message.timestamp.before.max.ms", "100"},
		{"message.timestamp.after.max.ms", "9223372036854775807"}, {"min.cleanable.dirty.ratio", "0"},
		{"min.cleanable.dirty.ratio", "1"}, {"min.cleanable.dirty.ratio", "0.25"}, {"min.compaction.lag.ms", "0"},
		{"min.insync.replicas", "2"}, {"preallocate", "TRUE"}, {"retention.bytes", "-5"},
		{"retention.ms", "-1"}, {"retention.ms", "0"}, {"segment.bytes", "14"}, {"segment.index.bytes", "4"},
		{"segment.jitter.ms", "0"}, {"segment.ms", "1"}, {"unclean.leader.election.enable", "false"},
		{"message.downconversion.enable", "false"}, {"message.format.version", "2.8"},
		{"message.format.version", "3.0-IV1"}, {"local.retention.ms", "-2"}, {"local.retention.bytes", "100"},
		{"remote.storage.enable", "false"}, {"remote.log.copy.disable", "true"}, {"remote.log.delete.on.disable", "false"},
		{"leader.replication.throttled.replicas", "*"}, {"follower.replication.throttled.replicas", "0:1, 1:2"},
		{"leader.replication.throttled.replicas", ""}, {"retention.ms", " 1000 "},
	}
	for _, kv := range valid {
		if err := ValidateTopicConfig(kv[0], kv[1]); err != nil {
			t.Errorf("ValidateTopicConfig(%s, %q) = %v, want nil", kv[0], kv[1], err)
		}
	}
	invalid := []struct{ key, value, want string }{
		{"cleanup.policy", "Delete", "must be a comma-separated list of compact, delete"},
		{"cleanup.policy", "delete,,compact", "must be a comma-separated list"},
		{"compression.type", "brotli", "must be one of uncompressed, zstd, lz4, snappy, gzip, producer"},
		{"compression.gzip.level", "0", "between 1 and 9 or -1"},
		{"compression.lz4.level", "18", "between 1 and 17"},
		{"compression.zstd.level", "23", "between -131072 and 22"},
		{"delete.retention.ms", "-1", ">= 0"},
		{"file.delete.delay.ms", "x", "must be an integer >= 0"},
		{"flush.messages", "0", ">= 1"},
		{"flush.ms", "-1", ">= 0"},
		{"index.interval.bytes", "-1", ">= 0"},
		{"max.compaction.lag.ms", "0", ">= 1"},
		{"max.message.bytes", "2147483648", ">= 0"},
		{"message.timestamp.type", "NoTime", "CreateTime, LogAppendTime"},
		{"message.timestamp.before.max.ms", "-1", ">= 0"},
		{"message.timestamp.after.max.ms", "-1", ">= 0"},
		{"message.timestamp.difference.max.ms", "-1", ">= 0"},
		{"min.cleanable.dirty.ratio", "1.01", "between 0 and 1"},
		{"min.cleanable.dirty.ratio", "NaN", "between 0 and 1"},
		{"min.compaction.lag.ms", "-1", ">= 0"},
		{"min.insync.replicas", "0", ">= 1"},
		{"preallocate", "1", "true or false"},
		{"retention.bytes", "1.5", "must be an integer"},
		{"retention.ms", "-2", ">= -1"},
		{"segment.bytes", "13", ">= 14"},
		{"segment.index.bytes", "3", ">= 4"},
		{"segment.jitter.ms", "-1", ">= 0"},
		{"segment.ms", "0", ">= 1"},
		{"unclean.leader.election.enable", "maybe", "true or false"},
		{"message.downconversion.enable", "", "true or false"},
		{"message.format.version", "banana", "Kafka version"},
		{"local.retention.ms", "-3", ">= -2"},
		{"local.retention.bytes", "-3", ">= -2"},
		{"remote.storage.enable", "true", "tiered storage is not supported"},
		{"remote.log.copy.disable", "no", "true or false"},
		{"leader.replication.throttled.replicas", "0-1", "partitionId:brokerId"},
		{"follower.replication.throttled.replicas", "*,0:1", "partitionId:brokerId"},
	}
	for _, tt := range invalid {
		err := ValidateTopicConfig(tt.key, tt.value)
		if err == nil {
			t.Errorf("ValidateTopicConfig(%s, %q): want error", tt.key, tt.value)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrUnknownTopicConfig) {
			t.Errorf("ValidateTopicConfig(%s, %q) = %v: want ErrInvalidConfig only", tt.key, tt.value, err)
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("ValidateTopicConfig(%s, %q) = %q, want it to name the key and contain %q", tt.key, tt.value, err, tt.want)
		}
	}
	// Every key in the table is covered by the cases above.
	covered := map[string]bool{}
	for _, kv := range valid {
		covered[kv[0]] = true
	}
	for _, k := range TopicConfigKeys() {
		if !covered[k.Name] {
			t.Errorf("no valid-value case for %s", k.Name)
		}
	}
}

func TestValidateTopicConfigUnknownKey(t *testing.T) {
	for _, key := range []string{"retention.hours", "log.retention.ms", "", "Retention.ms"} {
		err := ValidateTopicConfig(key, "1")
		if !errors.Is(err, ErrUnknownTopicConfig) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ValidateTopicConfig(%q) = %v, want ErrUnknownTopicConfig and ErrInvalidConfig", key, err)
		}
	}
}

func TestTopicDefaultsFromKafkaDefaults(t *testing.T) {
	got := NewConfig().TopicDefaults()
	want := map[string]string{
		"cleanup.policy":                          "delete",
		"compression.type":                        "producer",
		"compression.gzip.level":                  "-1",
		"compression.lz4.level":                   "9",
		"compression.zstd.level":                  "3",
		"delete.retention.ms":                     "86400000",
		"file.delete.delay.ms":                    "60000",
		"flush.messages":                          "9223372036854775807",
		"flush.ms":                                "9223372036854775807",
		"follower.replication.throttled.replicas": "",
		"index.interval.bytes":                    "4096",
		"leader.replication.throttled.replicas":   "",
		"local.retention.bytes":                   "-2",
		"local.retention.ms":                      "-2",
		"max.compaction.lag.ms":                   "9223372036854775807",
		"max.message.bytes":                       "1048588",
		"message.downconversion.enable":           "true",
		"message.format.version":                  "3.0-IV1",
		"message.timestamp.after.max.ms":          "9223372036854775807",
		"message.timestamp.before.max.ms":         "9223372036854775807",
		"message.timestamp.difference.max.ms":     "9223372036854775807",
		"message.timestamp.type":                  "CreateTime",
		"min.cleanable.dirty.ratio":               "0.5",
		"min.compaction.lag.ms":                   "0",
		"min.insync.replicas":                     "1",
		"preallocate":                             "false",
		"remote.log.copy.disable":                 "false",
		"remote.log.delete.on.disable":            "false",
		"remote.storage.enable":                   "false",
		"retention.bytes":                         "-1",
		"retention.ms":                            "604800000",
		"segment.bytes":                           "1073741824",
		"segment.index.bytes":                     "10485760",
		"segment.jitter.ms":                       "0",
		"segment.ms":                              "604800000",
		"unclean.leader.election.enable":          "false",
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected key %s", k)
			}
		}
	}
	for k, v := range got {
		if err := ValidateTopicConfig(k, v); err != nil {
			t.Errorf("default %s=%q fails its own validator: %v", k, v, err)
		}
	}
	if len(TopicConfigKeys()) != len(got) {
		t.Errorf("TopicConfigKeys has %d keys, TopicDefaults %d", len(TopicConfigKeys()), len(got))
	}
}

func TestTopicDefaultsFollowBrokerKeys(t *testing.T) {
	c, _ := mustParse(t,
		"--override", "log.retention.minutes=10",
		"--override", "log.roll.ms=5000",
		"--override", "log.flush.interval.ms=20",
		"--override", "message.max.bytes=2000",
		"--override", "log.cleanup.policy=compact,delete",
		"--override", "log.message.timestamp.type=LogAppendTime",
		"--override", "min.insync.replicas=2",
		"--override", "unclean.leader.election.enable=true",
		"--override", "log.segment.delete.delay.ms=7",
	)
	d := c.TopicDefaults()
	want := map[string]string{
		"retention.ms": "600000", "segment.ms": "5000", "flush.ms": "20", "max.message.bytes": "2000",
		"cleanup.policy": "compact,delete", "message.timestamp.type": "LogAppendTime",
		"min.insync.replicas": "2", "unclean.leader.election.enable": "true", "file.delete.delay.ms": "7",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %q, want %q", k, d[k], v)
		}
	}
	c, _ = mustParse(t, "--override", "log.retention.hours=-1")
	if got := c.TopicDefaults()["retention.ms"]; got != "-1" {
		t.Errorf("unlimited retention: retention.ms = %q, want -1", got)
	}
}

func TestResolveTopicConfig(t *testing.T) {
	broker, _ := mustParse(t, "--override", "log.segment.bytes=1000", "--override", "min.insync.replicas=2")
	tc, err := ResolveTopicConfig(broker, map[string]string{
		"retention.ms":           "1000",
		"cleanup.policy":         "compact, delete",
		"message.timestamp.type": "LogAppendTime",
		"max.message.bytes":      " 500 ",
		"flush.messages":         "10",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := TopicConfig{
		SegmentBytes:                1000,
		SegmentMs:                   168 * msPerHour,
		SegmentIndexBytes:           10 << 20,
		IndexIntervalBytes:          4096,
		MaxMessageBytes:             500,
		FlushMessages:               10,
		FlushMs:                     math.MaxInt64,
		RetentionMs:                 1000,
		RetentionBytes:              -1,
		FileDeleteDelayMs:           60000,
		LogAppendTime:               true,
		MessageTimestampBeforeMaxMs: math.MaxInt64,
		MessageTimestampAfterMaxMs:  math.MaxInt64,
		MinInsyncReplicas:           2,
		CleanupPolicy:               CleanupPolicy{Delete: true, Compact: true},
		DeleteRetentionMs:           86400000,
		MaxCompactionLagMs:          math.MaxInt64,
		MinCleanableDirtyRatio:      0.5,
		CompressionType:             "producer",
	}
	if tc != want {
		t.Fatalf("ResolveTopicConfig =\n%+v\nwant\n%+v", tc, want)
	}
	if tc.CleanupPolicy.String() != "compact,delete" {
		t.Errorf("CleanupPolicy.String() = %q", tc.CleanupPolicy.String())
	}

	// Defaults only, with a nil broker meaning Kafka's defaults.
	tc, err = ResolveTopicConfig(nil, nil)
	if err != nil || tc.SegmentBytes != 1<<30 || tc.RetentionMs != 168*msPerHour || tc.LogAppendTime || !tc.CleanupPolicy.Delete || tc.CleanupPolicy.Compact {
		t.Fatalf("ResolveTopicConfig(nil, nil) = %+v, %v", tc, err)
	}
}

func TestResolveTopicConfigTimestampFallback(t *testing.T) {
	tc, err := ResolveTopicConfig(nil, map[string]string{"message.timestamp.difference.max.ms": "100"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.MessageTimestampBeforeMaxMs != 100 || tc.MessageTimestampAfterMaxMs != 100 {
		t.Fatalf("difference fallback: before %d after %d, want 100 100", tc.MessageTimestampBeforeMaxMs, tc.MessageTimestampAfterMaxMs)
	}
	tc, err = ResolveTopicConfig(nil, map[string]string{"message.timestamp.difference.max.ms": "100", "message.timestamp.after.max.ms": "5"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.MessageTimestampBeforeMaxMs != 100 || tc.MessageTimestampAfterMaxMs != 5 {
		t.Fatalf("explicit after: before %d after %d, want 100 5", tc.MessageTimestampBeforeMaxMs, tc.MessageTimestampAfterMaxMs)
	}
}

func TestResolveTopicConfigErrors(t *testing.T) {
	tests := []struct {
		overrides map[string]string
		want      string
		unknown   bool
	}{
		{map[string]string{"retention.ms": "abc"}, `invalid value "abc" for retention.ms`, false},
		{map[string]string{"bogus": "1"}, "unknown topic config name: bogus", true},
		{map[string]string{"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, "min.compaction.lag.ms (10) must not exceed max.compaction.lag.ms (5)", false},
		{map[string]string{"segment.bytes": "1", "a.unknown": "x"}, "unknown topic config name: a.unknown", true},
	}
	for _, tt := range tests {
		_, err := ResolveTopicConfig(nil, tt.overrides)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ResolveTopicConfig(%v) = %v, want error containing %q", tt.overrides, err, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrUnknownTopicConfig) != tt.unknown {
			t.Errorf("ResolveTopicConfig(%v) = %v: wrong sentinel", tt.overrides, err)
		}
	}
}

func TestTopicConfigKeysSynonyms(t *testing.T) {
	keys := TopicConfigKeys()
	for i := 1; i < len(keys); i++ {
		if keys[i-1].Name >= keys[i].Name {
			t.Fatalf("TopicConfigKeys not sorted at %s", keys[i].Name)
		}
	}
	byName := map[string]TopicConfigKey{}
	for _, k := range keys {
		byName[k.Name] = k
		for _, s := range k.Synonyms {
			if classifyKey(s) == kindUnknown {
				t.Errorf("%s: synonym %s is not a known broker key", k.Name, s)
			}
		}
	}
	if got := byName["retention.ms"].Synonyms; !reflect.DeepEqual(got, []string{"log.retention.ms", "log.retention.minutes", "log.retention.hours"}) {
		t.Errorf("retention.ms synonyms = %q", got)
	}
	if byName["segment.ms"].Type.String() != "LONG" || byName["cleanup.policy"].Type.String() != "LIST" || byName["min.cleanable.dirty.ratio"].Type.String() != "DOUBLE" {
		t.Error("wrong config types")
	}
}

// TestMessageFormatVersionValues: message.format.version accepts exactly
// what Kafka 3.x's MetadataVersion.fromVersionString does — every
// inter-broker protocol version and production release name, with any
// parts past the third (0.x) or second (later) ignored — and nothing else.
func TestMessageFormatVersionValues(t *testing.T) {
	for _, v := range []string{
		"0.8.0", "0.8.2", "0.9.0", "0.9.0.1", "0.10.0", "0.10.0-IV0", "0.10.0-IV1", "0.10.0.0", "0.10.0.1",
		"0.10.1-IV2", "0.10.2", "0.11.0", "0.11.0-IV2", "0.11.0.3", "1.0", "1.0.1", "1.0-IV0", "1.1",
		"2.0-IV1", "2.1-IV2", "2.4", "2.7-IV2", "2.8", "2.8.1", "2.8-IV1", "3.0", "3.0-IV0", "3.0-IV1",
		"3.3-IV3", "3.5-IV2", "3.7-IV4", "3.9", "3.9-IV0", "3.9.1", "4.0-IV0", "4.0-IV1", " 2.8 ",
	} {
		if err := ValidateTopicConfig("message.format.version", v); err != nil {
			t.Errorf("message.format.version=%q: %v, want accepted (Kafka 3.x accepts it)", v, err)
		}
	}
	for _, v := range []string{
		"", "banana", "0.10", "0.10.0-IV2", "0.10.3", "0.7.2", "1.0-IV1", "1", "2", "2.8-IV2", "2.9",
		"3.0-IV2", "3.10", "4.0", "4.1", "4.1-IV0", "5.0", "2.8.", "0.10.0.", "v2.8", ".2.8", "2..8",
	} {
		err := ValidateTopicConfig("message.format.version", v)
		if err == nil {
			t.Errorf("message.format.version=%q accepted; Kafka 3.x refuses it", v)
		} else if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("message.format.version=%q: %v, want ErrInvalidConfig", v, err)
		}
	}
}

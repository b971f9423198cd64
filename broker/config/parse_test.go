package config

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeProps writes a properties file in a test directory and returns its path.
func writeProps(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.properties")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustParse parses args and fails the test on error.
func mustParse(t *testing.T, args ...string) (*Config, []string) {
	t.Helper()
	c, warnings, err := Parse(args)
	if err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return c, warnings
}

func TestParseNoArgsIsKafkaDefaults(t *testing.T) {
	c, warnings := mustParse(t)
	if len(warnings) != 0 {
		t.Fatalf("warnings = %q, want none", warnings)
	}
	want := NewConfig()
	c.explicit, want.explicit = nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse() = %+v, want NewConfig() %+v", c, want)
	}
	// Spot-check Kafka's defaults.
	checks := []struct {
		name      string
		got, want any
	}{
		{"node.id", c.NodeID, int32(-1)},
		{"listeners", c.Listeners, []Listener{{Name: "PLAINTEXT", Port: 9092}}},
		{"log.dirs", c.LogDirs, []string{"/tmp/kafka-logs"}},
		{"message.max.bytes", c.MessageMaxBytes, int32(1048588)},
		{"log.segment.bytes", c.LogSegmentBytes, int32(1073741824)},
		{"log.roll", c.LogRollMs(), int64(168 * 3600 * 1000)},
		{"retention", c.RetentionMs(), int64(168 * 3600 * 1000)},
		{"flush", c.FlushIntervalMs(), int64(math.MaxInt64)},
		{"socket.request.max.bytes", c.SocketRequestMaxBytes, int32(104857600)},
		{"offsets.topic.replication.factor", c.OffsetsTopicReplicationFactor, int16(3)},
		{"group.max.size", c.GroupMaxSize, int32(math.MaxInt32)},
		{"transaction.max.timeout.ms", c.TransactionMaxTimeoutMs, int32(900000)},
		{"inter-broker listener", c.InterBrokerListener(), "PLAINTEXT"},
		{"embed etcd", c.EmbedEtcd(), true},
		{"etcd dir", c.EtcdDataDir(), "/tmp/kafka-logs/etcd"},
		{"log level", c.SlogLevel(), slog.LevelInfo},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseFileAndOverrides(t *testing.T) {
	path := writeProps(t, `
# A Kafka-style file.
num.partitions=3
broker.rack: r1
log.dirs /data/a, /data/b
listeners=PLAINTEXT://:9092,\
          INTERNAL://127.0.0.1:9093
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT
auto.create.topics.enable = FALSE
default.replication.factor=2
`)
	c, warnings := mustParse(t, path,
		"--override", "num.partitions=5",
		"--override=default.replication.factor=1",
		"--override", "default.replication.factor=3",
		"--override", "kbroker.metrics.listener=127.0.0.1:9404",
		"--override", "etcd.endpoints=http://e1:2379, e2:2379,",
	)
	if len(warnings) != 0 {
		t.Fatalf("warnings = %q, want none", warnings)
	}
	if c.NumPartitions != 5 {
		t.Errorf("num.partitions = %d, want the override's 5", c.NumPartitions)
	}
	if c.DefaultReplicationFactor != 3 {
		t.Errorf("default.replication.factor = %d, want the last override's 3", c.DefaultReplicationFactor)
	}
	if c.BrokerRack != "r1" || c.AutoCreateTopicsEnable {
		t.Errorf("rack %q auto-create %v, want r1 false", c.BrokerRack, c.AutoCreateTopicsEnable)
	}
	if want := []string{"/data/a", "/data/b"}; !reflect.DeepEqual(c.LogDirs, want) {
		t.Errorf("log.dirs = %q, want %q", c.LogDirs, want)
	}
	wantL := []Listener{{Name: "PLAINTEXT", Port: 9092}, {Name: "INTERNAL", Host: "127.0.0.1", Port: 9093}}
	if !reflect.DeepEqual(c.Listeners, wantL) {
		t.Errorf("listeners = %+v, want %+v", c.Listeners, wantL)
	}
	if c.MetricsListener != "127.0.0.1:9404" {
		t.Errorf("metrics listener = %q", c.MetricsListener)
	}
	if want := []string{"http://e1:2379", "e2:2379"}; !reflect.DeepEqual(c.EtcdEndpoints, want) || c.EmbedEtcd() {
		t.Errorf("etcd.endpoints = %q, want %q", c.EtcdEndpoints, want)
	}
	if !c.IsSet("num.partitions") || !c.IsSet("broker.rack") || c.IsSet("message.max.bytes") {
		t.Errorf("IsSet wrong: num.partitions %v broker.rack %v message.max.bytes %v",
			c.IsSet("num.partitions"), c.IsSet("broker.rack"), c.IsSet("message.max.bytes"))
	}
}

func TestParseOverrideValueMayContainEquals(t *testing.T) {
	c, _ := mustParse(t, "--override", "broker.rack=a=b", "--override", "broker.rack")
	if c.BrokerRack != "" {
		t.Fatalf("a key without '=' should set the empty value, as Kafka does; got %q", c.BrokerRack)
	}
	c, _ = mustParse(t, "--override", "broker.rack=a=b")
	if c.BrokerRack != "a=b" {
		t.Fatalf("broker.rack = %q, want a=b", c.BrokerRack)
	}
}

func TestParseAliases(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want int32
	}{
		{"broker.id alone", "broker.id=7", nil, 7},
		{"node.id then broker.id", "node.id=1\nbroker.id=2", nil, 2},
		{"broker.id then node.id", "broker.id=2\nnode.id=1", nil, 1},
		{"override beats file alias", "node.id=1", []string{"--override", "broker.id=3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustParse(t, append([]string{writeProps(t, tt.file)}, tt.args...)...)
			if c.NodeID != tt.want {
				t.Fatalf("NodeID = %d, want %d", c.NodeID, tt.want)
			}
			if !c.IsSet("broker.id") || !c.IsSet("node.id") {
				t.Fatalf("IsSet should see the key through either name")
			}
		})
	}
}

func TestParseLogDirsBeatsLogDir(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"log.dir alone", []string{"--override", "log.dir=/x"}, []string{"/x"}},
		{"log.dirs after log.dir", []string{"--override", "log.dir=/x", "--override", "log.dirs=/y,/z"}, []string{"/y", "/z"}},
		{"log.dirs before log.dir", []string{"--override", "log.dirs=/y", "--override", "log.dir=/x"}, []string{"/y"}},
		{"last log.dir wins", []string{"--override", "log.dir=/x", "--override", "log.dir=/w"}, []string{"/w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustParse(t, tt.args...)
			if !reflect.DeepEqual(c.LogDirs, tt.want) {
				t.Fatalf("LogDirs = %q, want %q", c.LogDirs, tt.want)
			}
			if !c.IsSet("log.dirs") {
				t.Fatal("IsSet(log.dirs) = false")
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	path := writeProps(t, `
num.network.threads=3
num.io.threads=8
zookeeper.connect=localhost:2181
ssl.keystore.location=/k
process.roles=broker,controller
controller.quorum.voters=1@localhost:9093
my.custom.key=1
`)
	c, warnings := mustParse(t, path, "--override", "my.custom.key=2", "--override", "num.io.threads=4", "--override", "num.partitions=2")
	if c.NumPartitions != 2 {
		t.Fatalf("known keys must still apply; num.partitions = %d", c.NumPartitions)
	}
	wantIgnored := []string{"num.network.threads", "num.io.threads", "zookeeper.connect", "ssl.keystore.location", "process.roles", "controller.quorum.voters"}
	if len(warnings) != len(wantIgnored)+1 {
		t.Fatalf("got %d warnings, want one per key (%d): %q", len(warnings), len(wantIgnored)+1, warnings)
	}
	for i, key := range wantIgnored {
		if !strings.Contains(warnings[i], key) || !strings.Contains(warnings[i], "does not implement") {
			t.Errorf("warning %d = %q, want an ignored-Kafka-key warning for %s", i, warnings[i], key)
		}
	}
	last := warnings[len(warnings)-1]
	if !strings.Contains(last, "unknown config my.custom.key") {
		t.Errorf("last warning = %q, want the unknown key", last)
	}
}

func TestParseInvalidValues(t *testing.T) {
	tests := []struct {
		kv   string
		want string
	}{
		{"num.partitions=abc", `invalid value "abc" for num.partitions: must be an integer >= 1`},
		{"num.partitions=0", `invalid value "0" for num.partitions: must be an integer >= 1`},
		{"num.partitions=3000000000", `invalid value "3000000000" for num.partitions: must be an integer >= 1 within -2147483648..2147483647`},
		{"broker.id=x", `invalid value "x" for broker.id: must be an integer >= -1`},
		{"log.segment.bytes=13", `invalid value "13" for log.segment.bytes: must be an integer >= 14`},
		{"log.roll.hours=0", `invalid value "0" for log.roll.hours: must be an integer >= 1`},
		{"log.index.size.max.bytes=3", `invalid value "3" for log.index.size.max.bytes: must be an integer >= 4`},
		{"log.index.interval.bytes=-1", `invalid value "-1" for log.index.interval.bytes: must be an integer >= 0`},
		{"log.retention.ms=1h", `invalid value "1h" for log.retention.ms: must be an integer`},
		{"log.flush.interval.messages=0", `invalid value "0" for log.flush.interval.messages: must be an integer >= 1`},
		{"message.max.bytes=-1", `invalid value "-1" for message.max.bytes: must be an integer >= 0`},
		{"socket.request.max.bytes=0", `invalid value "0" for socket.request.max.bytes: must be an integer >= 1`},
		{"offsets.topic.replication.factor=40000", `invalid value "40000" for offsets.topic.replication.factor: must be an integer >= 1 within -32768..32767`},
		{"auto.create.topics.enable=yes", `invalid value "yes" for auto.create.topics.enable: must be true or false`},
		{"compression.type=GZIP", `invalid value "GZIP" for compression.type: must be one of uncompressed, zstd, lz4, snappy, gzip, producer`},
		{"compression.gzip.level=0", `invalid value "0" for compression.gzip.level: must be an integer between 1 and 9 or -1`},
		{"log.message.timestamp.type=createtime", `invalid value "createtime" for log.message.timestamp.type: must be one of CreateTime, LogAppendTime`},
		{"log.cleanup.policy=delete,archive", `invalid value "delete,archive" for log.cleanup.policy: must be a comma-separated list of compact, delete`},
		{"log.cleaner.min.cleanable.ratio=1.5", `invalid value "1.5" for log.cleaner.min.cleanable.ratio: must be a number between 0 and 1`},
		{"log.level=verbose", `invalid value "verbose" for log.level: must be one of debug, info, warn, error`},
		{"listeners=PLAINTEXT//:9092", `invalid value "PLAINTEXT//:9092" for listeners: "PLAINTEXT//:9092" has no "://"`},
		{"listeners=PLAINTEXT://:99999", `port 99999 is outside 0..65535`},
		{"listeners=PLAINTEXT://host", `has no port`},
		{"advertised.listeners=PLAINTEXT://[::1]9092", `want [ipv6]:port`},
		{"listener.security.protocol.map=PLAINTEXT:TLS", `unknown security protocol TLS`},
		{"security.inter.broker.protocol=TLS", `invalid value "TLS" for security.inter.broker.protocol: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL`},
		{"etcd.endpoints=ftp://x:1", `invalid value "ftp://x:1" for etcd.endpoints: "ftp://x:1": must be host:port or an http(s)://host:port URL`},
		{"etcd.embed.client.url=127.0.0.1:2379", `invalid value "127.0.0.1:2379" for etcd.embed.client.url: must be an http://host:port URL`},
		{"etcd.dial.timeout.ms=0", `invalid value "0" for etcd.dial.timeout.ms: must be an integer >= 1`},
		{"kbroker.metrics.listener=9404", `invalid value "9404" for kbroker.metrics.listener: must be host:port`},
		{"log.dir=", ``}, // valid syntax; checked below as no log dirs
	}
	for _, tt := range tests {
		if tt.want == "" {
			continue
		}
		t.Run(tt.kv, func(t *testing.T) {
			_, _, err := Parse([]string{"--override", tt.kv})
			if err == nil {
				t.Fatalf("Parse(--override %s): want error", tt.kv)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			var ive *InvalidValueError
			if !errors.As(err, &ive) {
				t.Fatalf("error %v is not an *InvalidValueError", err)
			}
			key, value, _ := strings.Cut(tt.kv, "=")
			if ive.Key != key || ive.Value != value {
				t.Errorf("InvalidValueError key %q value %q, want %q %q", ive.Key, ive.Value, key, value)
			}
		})
	}
}

func TestParseInvalidValueInFileNamesLine(t *testing.T) {
	path := writeProps(t, "# c\nnum.partitions=1\nnum.partitions=abc\n")
	_, _, err := Parse([]string{path})
	if err == nil || !strings.Contains(err.Error(), path+":3:") || !strings.Contains(err.Error(), `invalid value "abc" for num.partitions`) {
		t.Fatalf("error = %v, want it to name %s:3 and the bad value", err, path)
	}
}

func TestParseValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ssl listener", []string{"listeners=SSL://:9093"}, "only PLAINTEXT listeners are supported"},
		{"sasl listener by map", []string{"listeners=EXT://:9093", "listener.security.protocol.map=EXT:SASL_SSL"}, "EXT uses security protocol SASL_SSL"},
		{"unmapped listener", []string{"listeners=FOO://:9093"}, "no security protocol defined for listener FOO"},
		{"duplicate names", []string{"listeners=PLAINTEXT://:9092,plaintext://:9093"}, "PLAINTEXT appears more than once"},
		{"duplicate ports", []string{"listeners=PLAINTEXT://:9092,IN://:9092", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,IN:PLAINTEXT"}, "share port 9092"},
		{"no listeners", []string{"listeners="}, "at least one listener"},
		{"empty advertised", []string{"advertised.listeners="}, "at least one advertised listener"},
		{"advertised not bound", []string{"advertised.listeners=OTHER://h:1", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"}, "OTHER is not defined in listeners"},
		{"advertised wildcard", []string{"advertised.listeners=PLAINTEXT://0.0.0.0:9092"}, "non-routable address 0.0.0.0"},
		{"inter-broker not advertised", []string{"listeners=IN://:9092", "listener.security.protocol.map=IN:PLAINTEXT,PLAINTEXT:PLAINTEXT"}, "inter.broker.listener.name: PLAINTEXT must be one of the advertised"},
		{"inter-broker not mapped", []string{"listeners=IN://:9092", "listener.security.protocol.map=IN:PLAINTEXT"}, "listener PLAINTEXT is not in listener.security.protocol.map"},
		{"inter-broker both keys", []string{"inter.broker.listener.name=PLAINTEXT", "security.inter.broker.protocol=PLAINTEXT"}, "only one of"},
		{"inter-broker ssl", []string{"security.inter.broker.protocol=SSL"}, "SSL is not supported"},
		{"node.id above reserved", []string{"node.id=1001"}, "node.id must be -1"},
		{"node.id below reserved max", []string{"reserved.broker.max.id=5", "node.id=6"}, "reserved.broker.max.id (5)"},
		{"retention zero", []string{"log.retention.ms=0"}, "log.retention.ms must be -1 (unlimited) or >= 1"},
		{"retention zero hours", []string{"log.retention.hours=0"}, "log.retention.ms must be -1"},
		{"roll zero", []string{"log.roll.ms=0"}, "log.roll.ms must be >= 1"},
		{"flush negative", []string{"log.flush.interval.ms=-1"}, "log.flush.interval.ms must be >= 0"},
		{"no log dirs", []string{"log.dirs=, ,"}, "at least one log directory"},
		{"duplicate log dirs", []string{"log.dirs=/a,/a/"}, "listed twice"},
		{"fetch wait above lag", []string{"replica.fetch.wait.max.ms=40000", "replica.socket.timeout.ms=50000"}, "must not exceed replica.lag.time.max.ms"},
		{"fetch wait above socket timeout", []string{"replica.socket.timeout.ms=100"}, "replica.socket.timeout.ms (100)"},
		{"compaction lags", []string{"log.cleaner.min.compaction.lag.ms=10", "log.cleaner.max.compaction.lag.ms=5"}, "must not exceed log.cleaner.max.compaction.lag.ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, kv := range tt.args {
				args = append(args, "--override", kv)
			}
			_, _, err := Parse(args)
			if err == nil {
				t.Fatalf("Parse(%q): want error", args)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseValidListenerSetups(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"ipv4 and ipv6 share a port", []string{"listeners=PLAINTEXT://127.0.0.1:9092,V6://[::1]:9092", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,V6:PLAINTEXT"}},
		{"port zero twice", []string{"listeners=PLAINTEXT://:0,B://:0", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,B:PLAINTEXT"}},
		{"custom names", []string{"listeners=INTERNAL://:9092,EXTERNAL://:9093", "advertised.listeners=INTERNAL://10.0.0.1:9092,EXTERNAL://kafka.example.com:9093",
			"listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT", "inter.broker.listener.name=internal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, kv := range tt.args {
				args = append(args, "--override", kv)
			}
			c, _ := mustParse(t, args...)
			if c.InterBrokerListener() == "" {
				t.Fatal("no inter-broker listener")
			}
		})
	}
}

func TestParseUsage(t *testing.T) {
	path := writeProps(t, "num.partitions=2\n")
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"short help", []string{"-h"}, ErrHelp},
		{"long help after file", []string{path, "--help"}, ErrHelp},
		{"version", []string{"--version"}, ErrVersion},
		{"unknown option", []string{"--foo"}, ErrUsage},
		{"override without value", []string{"--override"}, ErrUsage},
		{"override empty key", []string{"--override", "=1"}, ErrUsage},
		{"file not first", []string{"--override", "a=b", path}, ErrUsage},
		{"two files", []string{path, path}, ErrUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.args)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.args, err, tt.want)
			}
		})
	}
	if _, _, err := Parse([]string{filepath.Join(t.TempDir(), "missing.properties")}); err == nil || !strings.Contains(err.Error(), "missing.properties") {
		t.Fatalf("missing file: err = %v, want an error naming the file", err)
	}
	if _, _, err := Parse([]string{writeProps(t, `a=\u00zz`)}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("malformed file: err = %v, want ErrInvalidConfig", err)
	}
}

func TestDerivedTimes(t *testing.T) {
	tests := []struct {
		args                  []string
		roll, retention, fush int64
	}{
		{nil, 168 * msPerHour, 168 * msPerHour, math.MaxInt64},
		{[]string{"log.roll.hours=2", "log.retention.hours=3"}, 2 * msPerHour, 3 * msPerHour, math.MaxInt64},
		{[]string{"log.roll.ms=5", "log.roll.hours=2"}, 5, 168 * msPerHour, math.MaxInt64},
		{[]string{"log.retention.minutes=10", "log.retention.hours=3"}, 168 * msPerHour, 10 * msPerMinute, math.MaxInt64},
		{[]string{"log.retention.ms=7", "log.retention.minutes=10"}, 168 * msPerHour, 7, math.MaxInt64},
		{[]string{"log.retention.ms=-1"}, 168 * msPerHour, -1, math.MaxInt64},
		{[]string{"log.retention.hours=-5"}, 168 * msPerHour, -1, math.MaxInt64},
		{[]string{"log.retention.minutes=-2", "log.retention.hours=5"}, 168 * msPerHour, -1, math.MaxInt64},
		{[]string{"log.flush.scheduler.interval.ms=1000"}, 168 * msPerHour, 168 * msPerHour, 1000},
		{[]string{"log.flush.scheduler.interval.ms=1000", "log.flush.interval.ms=50"}, 168 * msPerHour, 168 * msPerHour, 50},
	}
	for _, tt := range tests {
		var args []string
		for _, kv := range tt.args {
			args = append(args, "--override", kv)
		}
		c, _ := mustParse(t, args...)
		if c.LogRollMs() != tt.roll || c.RetentionMs() != tt.retention || c.FlushIntervalMs() != tt.fush {
			t.Errorf("%q: roll %d retention %d flush %d, want %d %d %d", tt.args,
				c.LogRollMs(), c.RetentionMs(), c.FlushIntervalMs(), tt.roll, tt.retention, tt.fush)
		}
	}
}

func TestListenerParsing(t *testing.T) {
	ls, err := parseListeners("plaintext://[::1]:9092, B://host.example:0 ,C://:1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{{"PLAINTEXT", "::1", 9092}, {"B", "host.example", 0}, {"C", "", 1}}
	if !reflect.DeepEqual(ls, want) {
		t.Fatalf("got %+v, want %+v", ls, want)
	}
	if got := ls[0].Addr(); got != "[::1]:9092" {
		t.Errorf("Addr = %q", got)
	}
	if got := ls[2].String(); got != "C://:1" {
		t.Errorf("String = %q", got)
	}
	for _, bad := range []string{"://:1", "A://h:x", "A://h:-1", "A://[::1:9", "A://h h:1"} {
		if _, err := parseListeners(bad); err == nil {
			t.Errorf("parseListeners(%q): want error", bad)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for raw, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn, "error": slog.LevelError} {
		c, _ := mustParse(t, "--override", "log.level="+raw)
		if got := c.SlogLevel(); got != want {
			t.Errorf("log.level=%s: %v, want %v", raw, got, want)
		}
	}
}

func TestValidateProgrammaticConfig(t *testing.T) {
	c := NewConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("NewConfig().Validate() = %v", err)
	}
	c.NumPartitions = 0
	var ive *InvalidValueError
	if err := c.Validate(); !errors.As(err, &ive) || ive.Key != "num.partitions" {
		t.Fatalf("Validate with NumPartitions=0 = %v, want an InvalidValueError for num.partitions", err)
	}
	c = NewConfig()
	c.CompressionType = "brotli"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "compression.type") {
		t.Fatalf("Validate with bad compression = %v", err)
	}
	c = NewConfig()
	c.Listeners = append(c.Listeners, Listener{Name: "X", Port: 70000})
	c.ListenerSecurityProtocolMap["X"] = ProtocolPlaintext
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "outside 0..65535") {
		t.Fatalf("Validate with port 70000 = %v", err)
	}
}

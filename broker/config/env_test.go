package config

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// noHost is a machine with no Kafka data directories and no mounts.
var noHost = hostProbe{
	mountPoints: func() map[string]bool { return map[string]bool{"/": true} },
	isDir:       func(string) bool { return false },
}

func mustParseEnv(t *testing.T, args, environ []string) (*Config, []Notice) {
	t.Helper()
	c, notices, err := parseEnv(args, environ, noHost)
	if err != nil {
		t.Fatalf("parseEnv(%q, %q): %v (notices %v)", args, environ, err, notices)
	}
	return c, notices
}

func TestEnvKeyName(t *testing.T) {
	for in, want := range map[string]string{
		"LOG_RETENTION_HOURS":                     "log.retention.hours",
		"BROKER_ID":                               "broker.id",
		"LISTENER_SECURITY_PROTOCOL_MAP":          "listener.security.protocol.map",
		"LISTENER_NAME_INTERNAL_SSL__CLIENT_AUTH": "listener.name.internal.ssl_client.auth",
		"SOME___DASHED_KEY":                       "some-dashed.key",
		"A____B":                                  "a-.b",
	} {
		if got := envKeyName(in); got != want {
			t.Errorf("envKeyName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseEnvDialects covers every environment dialect: each case is the
// environment of one kind of compose file and what the Config must hold.
func TestParseEnvDialects(t *testing.T) {
	kraft3 := []string{
		"KAFKA_NODE_ID=2",
		"KAFKA_PROCESS_ROLES=broker,controller",
		"KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka1:9093,2@kafka2:9093,3@kafka3:9093",
		"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
		"KAFKA_LISTENERS=PLAINTEXT://:19092,CONTROLLER://:9093,PLAINTEXT_HOST://:9092",
		"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka2:19092,PLAINTEXT_HOST://localhost:9092",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
		"KAFKA_INTER_BROKER_LISTENER_NAME=PLAINTEXT",
		"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw",
	}
	tests := []struct {
		name    string
		args    []string
		env     []string
		check   func(t *testing.T, c *Config)
		notices []string // substrings that some notice must contain
	}{
		{
			name: "apache/kafka and cp-kafka KAFKA_*",
			env: []string{
				"KAFKA_BROKER_ID=7",
				"KAFKA_AUTO_CREATE_TOPICS_ENABLE=false",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
				"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
				"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS=5",
				"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
				"KAFKA_NUM_PARTITIONS=6",
				"KAFKA_LOG_RETENTION_HOURS=24",
				"KAFKA_LOG_RETENTION_BYTES=1000000",
				"KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS=1000",
				"KAFKA_LOG_DIRS=/data/a,/data/b",
				"KAFKA_DEFAULT_REPLICATION_FACTOR=1",
				"KAFKA_MIN_INSYNC_REPLICAS=1",
			},
			check: func(t *testing.T, c *Config) {
				want := []any{int32(7), false, int16(1), int16(1), int32(1), int32(5), int32(0), int32(6), int64(24 * 3600 * 1000), int64(1000000), int64(1000), []string{"/data/a", "/data/b"}}
				got := []any{c.NodeID, c.AutoCreateTopicsEnable, c.OffsetsTopicReplicationFactor, c.TransactionStateLogReplicationFactor, c.TransactionStateLogMinIsr, c.TransactionStateLogNumPartitions, c.GroupInitialRebalanceDelayMs, c.NumPartitions, c.RetentionMs(), c.LogRetentionBytes, c.LogRetentionCheckIntervalMs, c.LogDirs}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			},
		},
		{
			name: "listeners, advertised listeners, protocol map, inter-broker listener",
			env: []string{
				"KAFKA_NODE_ID=1",
				"KAFKA_LISTENERS=INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092",
				"KAFKA_ADVERTISED_LISTENERS=INTERNAL://kafka1:29092,EXTERNAL://localhost:9092",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
				"KAFKA_INTER_BROKER_LISTENER_NAME=INTERNAL",
			},
			check: func(t *testing.T, c *Config) {
				if got := formatListeners(c.Listeners); got != "INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092" {
					t.Errorf("listeners = %s", got)
				}
				if got := formatListeners(c.AdvertisedListeners); got != "INTERNAL://kafka1:29092,EXTERNAL://localhost:9092" {
					t.Errorf("advertised.listeners = %s", got)
				}
				if c.InterBrokerListener() != "INTERNAL" {
					t.Errorf("inter-broker listener = %s", c.InterBrokerListener())
				}
			},
		},
		{
			name: "bitnami KAFKA_CFG_* beats KAFKA_*",
			env: []string{
				"KAFKA_CFG_NODE_ID=3",
				"KAFKA_NUM_PARTITIONS=2",
				"KAFKA_CFG_NUM_PARTITIONS=4",
				"KAFKA_CFG_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093",
				"KAFKA_CFG_ADVERTISED_LISTENERS=PLAINTEXT://kafka:9092",
				"KAFKA_CFG_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"KAFKA_CFG_PROCESS_ROLES=controller,broker",
				"KAFKA_CFG_CONTROLLER_QUORUM_VOTERS=3@kafka:9093",
				"KAFKA_CFG_CONTROLLER_LISTENER_NAMES=CONTROLLER",
				"KAFKA_CFG_LOG_RETENTION_MINUTES=30",
				"KAFKA_ENABLE_KRAFT=yes",
				"KAFKA_KRAFT_CLUSTER_ID=abcdefghijklmnopqrstuv",
				"ALLOW_PLAINTEXT_LISTENER=yes",
				"BITNAMI_DEBUG=false",
			},
			check: func(t *testing.T, c *Config) {
				if c.NodeID != 3 || c.NumPartitions != 4 || c.RetentionMs() != 30*60*1000 {
					t.Errorf("node.id %d num.partitions %d retention %d", c.NodeID, c.NumPartitions, c.RetentionMs())
				}
				if got := formatListeners(c.Listeners); got != "PLAINTEXT://:9092" {
					t.Errorf("listeners = %s, want the CONTROLLER listener dropped", got)
				}
				if c.EtcdEmbedInitialCluster != "" {
					t.Errorf("one voter must keep the single-member etcd; initial cluster %q", c.EtcdEmbedInitialCluster)
				}
			},
			notices: []string{"listener CONTROLLER://:9093 is a KRaft controller listener", "process.roles (KAFKA_CFG_PROCESS_ROLES) is a KRaft/ZooKeeper setting", "KAFKA_KRAFT_CLUSTER_ID=abcdefghijklmnopqrstuv is informational"},
		},
		{
			name: "KRaft combined mode with three voters forms the etcd cluster",
			env:  kraft3,
			check: func(t *testing.T, c *Config) {
				if c.EtcdEmbedInitialCluster != "1=http://kafka1:2380,2=http://kafka2:2380,3=http://kafka3:2380" {
					t.Errorf("initial cluster = %q", c.EtcdEmbedInitialCluster)
				}
				if c.EtcdEmbedPeerURL != "http://0.0.0.0:2380" {
					t.Errorf("peer url = %q", c.EtcdEmbedPeerURL)
				}
				if got := formatListeners(c.Listeners); got != "PLAINTEXT://:19092,PLAINTEXT_HOST://:9092" {
					t.Errorf("listeners = %s", got)
				}
			},
			notices: []string{"CLUSTER_ID=4L6g3nShT-eMCtK--X86sw is informational", "embedded etcd cluster formed from controller.quorum.voters", "controller.quorum.voters (KAFKA_CONTROLLER_QUORUM_VOTERS) is a KRaft/ZooKeeper setting"},
		},
		{
			name: "an explicit peer URL keeps its port and address",
			env:  append(append([]string(nil), kraft3...), "KAFKA_ETCD_EMBED_PEER_URL=http://0.0.0.0:12380"),
			check: func(t *testing.T, c *Config) {
				if c.EtcdEmbedInitialCluster != "1=http://kafka1:12380,2=http://kafka2:12380,3=http://kafka3:12380" || c.EtcdEmbedPeerURL != "http://0.0.0.0:12380" {
					t.Errorf("initial cluster %q peer %q", c.EtcdEmbedInitialCluster, c.EtcdEmbedPeerURL)
				}
			},
		},
		{
			name: "an explicit initial cluster wins over the voters",
			env:  kraft3,
			args: []string{"--override", "etcd.embed.initial.cluster=2=http://x:2380"},
			check: func(t *testing.T, c *Config) {
				if c.EtcdEmbedInitialCluster != "2=http://x:2380" || c.EtcdEmbedPeerURL != "http://127.0.0.1:2380" {
					t.Errorf("initial cluster %q peer %q", c.EtcdEmbedInitialCluster, c.EtcdEmbedPeerURL)
				}
			},
		},
		{
			name: "a broker that is not a voter is warned, not failed",
			env:  append(append([]string(nil), kraft3...), "KAFKA_NODE_ID=4"),
			check: func(t *testing.T, c *Config) {
				if c.NodeID != 4 || c.EtcdEmbedInitialCluster != "" {
					t.Errorf("node.id %d initial cluster %q", c.NodeID, c.EtcdEmbedInitialCluster)
				}
			},
			notices: []string{"node.id 4 is not among controller.quorum.voters"},
		},
		{
			name: "ZooKeeper-mode cp-kafka file",
			env: []string{
				"KAFKA_BROKER_ID=1",
				"KAFKA_ZOOKEEPER_CONNECT=zookeeper:2181",
				"KAFKA_ZOOKEEPER_SESSION_TIMEOUT_MS=6000",
				"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka:29092,PLAINTEXT_HOST://localhost:9092",
				"KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:29092,PLAINTEXT_HOST://0.0.0.0:9092",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
				"KAFKA_CONFLUENT_SUPPORT_METRICS_ENABLE=false",
				"KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR=1",
			},
			check: func(t *testing.T, c *Config) {
				if c.NodeID != 1 || len(c.Listeners) != 2 {
					t.Errorf("node.id %d listeners %v", c.NodeID, c.Listeners)
				}
			},
			notices: []string{"zookeeper.connect (KAFKA_ZOOKEEPER_CONNECT) is a KRaft/ZooKeeper setting kbroker does not need", "KAFKA_CONFLUENT_SUPPORT_METRICS_ENABLE is a Confluent Platform setting"},
		},
		{
			name: "image-only variables are not config",
			env: []string{
				"KAFKA_HEAP_OPTS=-Xmx1G", "KAFKA_OPTS=-javaagent:x.jar", "KAFKA_JMX_PORT=9101",
				"KAFKA_JMX_HOSTNAME=localhost", "KAFKA_LOG4J_ROOT_LOGLEVEL=WARN",
				"KAFKA_LOG4J_LOGGERS=kafka=WARN", "KAFKA_VERSION=3.9.0", "KAFKA_HOME=/opt/kafka",
				"PATH=/usr/bin", "HOME=/root",
			},
			check: func(t *testing.T, c *Config) {
				want := NewConfig()
				c.explicit, want.explicit = nil, nil
				if !reflect.DeepEqual(c, want) {
					t.Errorf("image variables changed the config: %+v", c)
				}
			},
		},
		{
			name: "file < environment < override",
			args: []string{"FILE", "--override", "num.partitions=9"},
			env:  []string{"KAFKA_NUM_PARTITIONS=5", "KAFKA_LOG_RETENTION_HOURS=2"},
			check: func(t *testing.T, c *Config) {
				if c.NumPartitions != 9 || c.RetentionMs() != 2*3600*1000 || c.DefaultReplicationFactor != 2 {
					t.Errorf("num.partitions %d retention %d default.replication.factor %d", c.NumPartitions, c.RetentionMs(), c.DefaultReplicationFactor)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string(nil), tt.args...)
			if len(args) > 0 && args[0] == "FILE" {
				args[0] = writeProps(t, "num.partitions=3\nlog.retention.hours=1\ndefault.replication.factor=2\n")
			}
			c, notices := mustParseEnv(t, args, tt.env)
			tt.check(t, c)
			for _, want := range tt.notices {
				found := false
				for _, n := range notices {
					found = found || strings.Contains(n.Msg, want)
				}
				if !found {
					t.Errorf("no notice contains %q; notices: %v", want, notices)
				}
			}
			for _, n := range notices {
				if n.Level >= slog.LevelWarn && !strings.Contains(n.Msg, "not among controller.quorum.voters") {
					t.Errorf("unexpected warning: %s", n.Msg)
				}
			}
		})
	}
}

func TestParseEnvUnknownAndInvalid(t *testing.T) {
	_, notices := mustParseEnv(t, nil, []string{"KAFKA_NUM_PARTITONS=3"})
	if len(notices) != 1 || notices[0].Level != slog.LevelWarn || !strings.Contains(notices[0].Msg, "unknown config num.partitons (env KAFKA_NUM_PARTITONS)") {
		t.Fatalf("notices = %v, want one warning naming the misspelt variable", notices)
	}
	_, _, err := parseEnv(nil, []string{"KAFKA_NUM_PARTITIONS=many"}, noHost)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "env KAFKA_NUM_PARTITIONS") {
		t.Fatalf("err = %v, want an invalid-config error naming the variable", err)
	}
	_, notices = mustParseEnv(t, nil, []string{"KAFKA_NODE_ID=1", "KAFKA_CONTROLLER_QUORUM_VOTERS=1@a:9093,oops"})
	if !hasNotice(notices, slog.LevelWarn, "not used to form the etcd cluster") {
		t.Fatalf("notices = %v, want a warning about the malformed voters list", notices)
	}
}

func hasNotice(ns []Notice, level slog.Level, substr string) bool {
	for _, n := range ns {
		if n.Level == level && strings.Contains(n.Msg, substr) {
			return true
		}
	}
	return false
}

func TestParseEnvControllerOnlyListenerIsKept(t *testing.T) {
	c, notices := mustParseEnv(t, nil, []string{
		"KAFKA_LISTENERS=CONTROLLER://:9093",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT",
		"KAFKA_INTER_BROKER_LISTENER_NAME=CONTROLLER",
		"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
	})
	if formatListeners(c.Listeners) != "CONTROLLER://:9093" || !hasNotice(notices, slog.LevelWarn, "every listener is named in controller.listener.names") {
		t.Fatalf("listeners %v notices %v", c.Listeners, notices)
	}
}

func TestDefaultDataDir(t *testing.T) {
	probe := func(mounts []string, dirs ...string) hostProbe {
		return hostProbe{
			mountPoints: func() map[string]bool { return toSet(mounts...) },
			isDir: func(p string) bool {
				for _, d := range dirs {
					if d == p {
						return true
					}
				}
				return false
			},
		}
	}
	tests := []struct {
		name string
		host hostProbe
		args []string
		want []string
	}{
		{"nothing mounted or present", probe([]string{"/"}), nil, []string{"/tmp/kafka-logs"}},
		{"kbroker image volume", probe([]string{"/", "/var/lib/kafka/data"}, "/var/lib/kafka/data", "/bitnami/kafka/data"), nil, []string{"/var/lib/kafka/data"}},
		{"bitnami volume beats the image volume", probe([]string{"/", "/bitnami/kafka", "/var/lib/kafka/data"}, "/var/lib/kafka/data"), nil, []string{"/bitnami/kafka/data"}},
		{"existing directory without mount table", hostProbe{mountPoints: func() map[string]bool { return nil }, isDir: func(p string) bool { return p == "/var/lib/kafka/data" }}, nil, []string{"/var/lib/kafka/data"}},
		{"log.dirs set", probe([]string{"/var/lib/kafka/data"}), []string{"--override", "log.dirs=/x"}, []string{"/x"}},
		{"log.dir set", probe([]string{"/var/lib/kafka/data"}), []string{"--override", "log.dir=/y"}, []string{"/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parseEnv(tt.args, nil, tt.host)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.LogDirs, tt.want) {
				t.Fatalf("log.dirs = %v, want %v", c.LogDirs, tt.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/my\040disk`); got != "/mnt/my disk" {
		t.Fatalf("got %q", got)
	}
}

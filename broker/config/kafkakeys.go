package config

import "strings"

// Broker keys Apache Kafka defines that kbroker accepts but ignores: a
// server.properties written for Kafka should start kbroker with a warning per
// key, not fail. Keys kbroker implements are in brokerKeys, not here.
var ignoredKafkaKeys = toSet(
	// Threads and queues: kbroker uses goroutines, not pools.
	"num.network.threads", "num.io.threads", "background.threads",
	"num.replica.alter.log.dirs.threads",
	"queued.max.requests", "queued.max.request.bytes",
	"socket.send.buffer.bytes", "socket.receive.buffer.bytes", "socket.listen.backlog.size",
	"replica.socket.receive.buffer.bytes", "request.timeout.ms",
	"socket.connection.setup.timeout.ms", "socket.connection.setup.timeout.max.ms",
	// Connection limits and quotas.
	"max.connections", "max.connections.per.ip", "max.connections.per.ip.overrides",
	"max.connection.creation.rate", "connection.failed.authentication.delay.ms",
	"connections.max.reauth.ms", "client.quota.callback.class",
	"quota.window.num", "quota.window.size.seconds",
	"replication.quota.window.num", "replication.quota.window.size.seconds",
	"alter.log.dirs.replication.quota.window.num", "alter.log.dirs.replication.quota.window.size.seconds",
	"controller.quota.window.num", "controller.quota.window.size.seconds",
	"leader.replication.throttled.rate", "follower.replication.throttled.rate",
	"replica.alter.log.dirs.io.max.bytes.per.second",
	// ZooKeeper and KRaft: kbroker keeps metadata in etcd.
	"process.roles", "controller.listener.names", "control.plane.listener.name",
	"controller.socket.timeout.ms", "initial.broker.registration.timeout.ms",
	"metadata.log.dir", "metadata.log.segment.bytes", "metadata.log.segment.min.bytes",
	"metadata.log.segment.ms", "metadata.max.retention.bytes", "metadata.max.retention.ms",
	"metadata.max.idle.interval.ms", "metadata.log.max.record.bytes.between.snapshots",
	"metadata.log.max.snapshot.interval.ms", "server.max.startup.time.ms",
	"eligible.leader.replicas.enable", "broker.id.generation.enable",
	"inter.broker.protocol.version", "log.message.format.version",
	"unstable.api.versions.enable", "unstable.feature.versions.enable",
	"early.start.listeners",
	// Controlled shutdown, purgatories, fetch sessions.
	"controlled.shutdown.enable", "controlled.shutdown.max.retries", "controlled.shutdown.retry.backoff.ms",
	"fetch.purgatory.purge.interval.requests", "producer.purgatory.purge.interval.requests",
	"delete.records.purgatory.purge.interval.requests",
	"max.incremental.fetch.session.cache.slots", "max.request.partition.size.limit",
	"unclean.leader.election.interval.ms",
	// Log internals.
	"log.flush.offset.checkpoint.interval.ms", "log.flush.start.offset.checkpoint.interval.ms",
	"log.dir.failure.timeout.ms", "log.initial.task.delay.ms",
	"log.cleaner.threads", "log.cleaner.io.max.bytes.per.second", "log.cleaner.dedupe.buffer.size",
	"log.cleaner.io.buffer.size", "log.cleaner.io.buffer.load.factor", "log.cleaner.backoff.ms",
	"log.local.retention.ms", "log.local.retention.bytes",
	// Coordinators.
	"offsets.load.buffer.size", "offsets.topic.compression.codec",
	"transaction.state.log.load.buffer.size",
	"transaction.two.phase.commit.enable",
	// Security and plugins.
	"authorizer.class.name", "principal.builder.class", "security.providers",
	"create.topic.policy.class.name", "alter.config.policy.class.name",
	"delegation.token.secret.key", "delegation.token.master.key", "delegation.token.max.lifetime.ms",
	"delegation.token.expiry.time.ms", "delegation.token.expiry.check.interval.ms",
	"allow.everyone.if.no.acl.found", "super.users",
	// Metrics reporters (kbroker serves Prometheus; see kbroker.metrics.listener).
	"metric.reporters", "metrics.num.samples", "metrics.sample.window.ms", "metrics.recording.level",
	"kafka.metrics.reporters", "kafka.metrics.polling.interval.secs", "auto.include.jmx.reporter",
	"telemetry.max.bytes",
	// Tiered storage.
	"remote.fetch.max.wait.ms", "remote.list.offsets.request.timeout.ms",
	// Removed in Kafka 3.0 but still found in old files.
	"host.name", "port", "advertised.host.name", "advertised.port",
)

// ignoredKafkaPrefixes are families of Kafka keys ignored as a whole.
var ignoredKafkaPrefixes = []string{
	"zookeeper.", "controller.quorum.", "ssl.", "sasl.", "listener.name.",
	"password.encoder.", "remote.log.", "group.consumer.", "group.share.",
	"group.coordinator.", "share.coordinator.", "share.fetch.", "config.providers",
}

func toSet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// keyKind classifies a key name from a file or override.
type keyKind int

const (
	kindImplemented keyKind = iota
	kindIgnoredKafka
	kindUnknown
)

func classifyKey(name string) keyKind {
	if lookupKey(name) != nil {
		return kindImplemented
	}
	if ignoredKafkaKeys[name] {
		return kindIgnoredKafka
	}
	for _, p := range ignoredKafkaPrefixes {
		if strings.HasPrefix(name, p) {
			return kindIgnoredKafka
		}
	}
	return kindUnknown
}

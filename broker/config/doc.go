// Package config holds the broker's static configuration: the keys, their
// Apache Kafka defaults and validators, the command line, the properties-file
// reader, and the topic-level configuration that CreateTopics, DescribeConfigs
// and the log use.
//
// # Command line
//
// The command line follows Kafka's kafka-server-start.sh:
//
//	kbroker [server.properties] [--override key=value]...
//
// The optional first argument names a properties file. Each --override (also
// spelled --override=key=value) sets one key; overrides are applied after the
// file, in order, so an override beats the file and a later setting of a key
// beats an earlier one. -h/--help yields ErrHelp and --version ErrVersion, so
// the caller can print Help() or its version and exit.
//
// Keys are Kafka's names. A key Kafka knows but kbroker does not implement
// (num.network.threads, zookeeper.connect, process.roles, ssl.*, …) is accepted
// and reported as ignored; a key nobody knows is reported as unknown. Both come
// back from Parse as warning strings, one per key, for the caller to log once.
// An invalid value is an error naming the key, the value and what is allowed.
//
// Aliases resolve to one field: node.id and broker.id are the same setting and
// the one set last wins. log.dirs and log.dir also share a field, but as in
// Kafka (KafkaConfig.logDirs) log.dirs wins whenever it is set, whatever the
// order; log.dir only applies when log.dirs is not set anywhere.
//
// Several Kafka keys are derived: segment roll time (log.roll.ms, else
// log.roll.hours), retention time (log.retention.ms, else
// log.retention.minutes, else log.retention.hours; negative means unlimited,
// -1) and the flush interval (log.flush.interval.ms, else
// log.flush.scheduler.interval.ms). Use LogRollMs, RetentionMs and
// FlushIntervalMs rather than reading the raw fields.
//
// # Environment
//
// Between the file and the overrides comes the environment, read the way
// Kafka's container images read it, so a docker-compose file written for
// apache/kafka, confluentinc/cp-kafka or bitnami/kafka works unchanged
// (ParseEnv; Parse reads os.Environ):
//
//   - KAFKA_NAME (apache/kafka, cp-kafka) sets the key made from NAME by
//     turning "___" into "-", then "__" into "_", then "_" into ".", and
//     lower-casing: KAFKA_LOG_RETENTION_HOURS is log.retention.hours,
//     KAFKA_BROKER_ID broker.id. KAFKA_CFG_NAME (bitnami) maps NAME the same
//     way and beats KAFKA_NAME for the same key. Within each group variables
//     apply in name order.
//   - Variables of the images' launchers (KAFKA_HEAP_OPTS, KAFKA_OPTS,
//     KAFKA_JMX_*, KAFKA_LOG4J_*, KAFKA_VERSION, KAFKA_HOME, bitnami's setup
//     variables) and KAFKA_CONFLUENT_* are ignored with a Debug notice.
//     CLUSTER_ID (and cluster.id, kraft.cluster.id) is informational: the
//     cluster ID lives in etcd.
//   - KRaft and ZooKeeper keys from the environment (process.roles,
//     controller.*, zookeeper.*, metadata.*) are reported at Info as not
//     needed, never as errors. Two of them are used, from any source: the
//     listeners named in controller.listener.names are not opened, and a
//     controller.quorum.voters list of several voters that includes node.id
//     forms the embedded etcd cluster ("1@kafka1:9093,..." becomes
//     etcd.embed.initial.cluster "1=http://kafka1:2380,...", with
//     etcd.embed.peer.url http://0.0.0.0:2380) unless
//     etcd.embed.initial.cluster or etcd.endpoints is set.
//   - When no source sets log.dirs or log.dir, the data paths Kafka images
//     use are honoured: /bitnami/kafka/data when /bitnami or /bitnami/kafka
//     is a mount point, else /var/lib/kafka/data when /var/lib/kafka(/data)
//     is one, else whichever of the two exists; otherwise Kafka's default
//     /tmp/kafka-logs stays.
//
// # Properties file format
//
// The file is read with java.util.Properties rules, so a Kafka
// server.properties works unchanged:
//
//   - A natural line ends at \n, \r or \r\n. Leading blanks (space, tab,
//     form feed) of every natural line are skipped.
//   - A line whose first non-blank character is '#' or '!' is a comment. A
//     comment never continues onto the next line, even if it ends in '\'.
//   - Blank lines are skipped.
//   - A line ending in an odd number of backslashes continues on the next
//     line: the final backslash and the line break are dropped, and so are the
//     leading blanks of the next line. An empty continuation line ends the
//     logical line.
//   - The key runs to the first unescaped '=', ':' or blank. Blanks around the
//     separator are skipped, and with a blank separator one following '=' or
//     ':' is also taken as part of the separator. So "k=v", "k: v" and "k v"
//     all set k to v, and the value keeps its trailing blanks (the config layer
//     then trims values, as Kafka's ConfigDef does).
//   - In keys and values, \t \n \r \f are tab, newline, carriage return and
//     form feed; \uXXXX (exactly four hex digits) is that UTF-16 code unit,
//     surrogate pairs combining into one character; a backslash before any
//     other character yields that character (so "\=" "\:" "\ " "\\" escape
//     the separators and the backslash). A malformed \u escape is an error.
//   - A key given twice keeps the last value.
//
// One deviation: Java reads the file as ISO-8859-1; kbroker reads it as UTF-8,
// which is what files written today contain. Pure-ASCII files (all of Kafka's
// keys and the usual values) read the same either way.
//
// # Topic configuration
//
// ValidateTopicConfig knows every topic-level key of Kafka's LogConfig with its
// type and range; an unknown key is an error wrapping ErrUnknownTopicConfig
// (CreateTopics answers INVALID_CONFIG). Config.TopicDefaults gives the broker
// defaults under topic key names and ResolveTopicConfig lays a topic's
// overrides over them.
//
// # Ownership
//
// A *Config is built once at startup by Parse (or NewConfig plus field
// assignments in tests) and then treated as read-only by everyone; nothing in
// this package mutates a Config after Parse returns it.
package config

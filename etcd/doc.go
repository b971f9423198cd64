// Package etcd keeps kbroker's cluster metadata in etcd, the way Apache Kafka
// kept it in ZooKeeper: broker registrations bound to leases, a controller
// elected with concurrency.Election, topics and partition states written by
// compare-and-swap, and on every broker a watched, immutable metadata image.
//
// # Key layout
//
// The cluster ID lives at /kbroker/cluster-id as a bare 22-character string
// (Kafka's UUID form: URL-safe base64 of 16 random bytes, no padding),
// created once with a compare-and-swap by the first broker to start. One etcd
// (or etcd namespace) holds one kbroker cluster. Every other key lives under
// /kbroker/<cluster-id>/ and holds JSON:
//
//	brokers/<id>             {"id":1,"rack":"r1","endpoints":[{"listener":"PLAINTEXT",
//	                          "host":"h","port":9092,"security_protocol":"PLAINTEXT"}],
//	                          "incarnation":"dab6hlrwlij9","shutting_down":true,
//	                          "offline_dirs":[{"dir":"/d2","partitions":
//	                          [{"topic":"t","partition":0}]}]}
//	                         bound to the broker's lease (ephemeral); the key's
//	                         CreateRevision is the broker epoch; rack,
//	                         shutting_down and offline_dirs are omitted when
//	                         empty; shutting_down marks a controlled shutdown,
//	                         offline_dirs the log dirs the broker took offline
//	                         after an I/O error, with the partitions that were
//	                         in them (KIP-112; DESIGN.md's log-dirs/ key, kept
//	                         in the registration so a restart clears it).
//	                         incarnation is an opaque tag of the process that
//	                         registered, quoted in ErrBrokerIDInUse: the broker
//	                         writes its start time (Unix nanoseconds in base
//	                         36), and RegisterBroker fills an empty one with a
//	                         random UUID string. Nothing compares it; the
//	                         broker epoch is what tells registrations apart
//	controller/<lease-hex>   "<broker id>"; concurrency.Election candidates, the
//	                         one with the lowest CreateRevision leads and that
//	                         revision is the controller epoch
//	topics/<name>            {"id":"<uuid>","replicas":[[1,2],[2,3]],"configs":{"k":"v"}}
//	                         replicas[p] is partition p's assignment; written by
//	                         the controller, configs also by any broker
//	                         (SetTopicConfigs, compare-and-swap on ModRevision)
//	partitions/<topic>/<p>   {"leader":1,"leader_epoch":0,"isr":[1,2],"partition_epoch":0}
//	                         p in decimal without leading zeros
//	producer-ids/next        {"next":N}: the first producer ID not yet handed out
//	broker-ids/next          {"next":N}: the next generated broker id (from 1001)
//
// Nothing else is written. Keys that later issues will add (dynamic broker
// configs, ACLs, SCRAM credentials, quotas, finalized features; see
// DESIGN.md) do not exist yet. The image reads only the keys
// above: others under the prefix, and keys that do not parse, are ignored,
// and values that do not decode are logged and treated as absent.
//
// # Fencing
//
// Every controller write is a transaction comparing the election key's
// CreateRevision with the controller's epoch, so a deposed controller (its
// lease expired, or it resigned) cannot write, whatever it believes. ISR
// changes by a partition leader compare the partition key's ModRevision,
// which changes on every write to the partition, so a zombie leader or a
// leader racing the controller loses (ErrConflict) and must re-read.
//
// # Large topics and etcd's transaction limit
//
// etcd rejects transactions with more than --max-txn-ops operations (default
// 128, and an external etcd may not be tuned), while a Kafka topic may have
// thousands of partitions. The store therefore never relies on a raised
// limit, and the embedded server keeps the default: CreateTopic and
// AddPartitions write the partition keys in chunks of 100 and the topic key
// last, each transaction fenced and conditional on the topic key being in
// the state read at the start. Readers (the image) ignore partition keys
// beyond the topic's assignment, so a topic appears, or grows, atomically at
// the revision of its topic key. A controller deposed half-way leaves only
// ignored keys: CreateTopic deletes a name's partition keys before writing
// new ones, and AddPartitions overwrites them. DeleteTopic is one
// transaction (a range delete counts as one operation). Each value must stay
// under etcd's request limit (1.5 MiB by default), which bounds a topic to
// roughly 80,000 partitions at replication factor 3.
//
// # The metadata image
//
// Store.Watch lists the prefix at one revision and then watches from the
// next. One goroutine owns the raw records (imageBuilder) and, after each
// watch response, publishes a new Image that shares every unchanged map and
// *Topic with the previous one. Image.Revision is the newest revision
// applied; WaitForRevision blocks until a given revision (typically one a
// write method returned) is visible, asking etcd for a progress notification
// when the revision carries no event under the prefix. A watch that falls
// behind compaction lists again.
//
// # Embedded server
//
// StartEmbedded runs a single-member etcd in the broker's process, tuned for
// small metadata: 25 ms ticks and a 250 ms election timeout (a restarted
// member elects itself in about 0.2 s instead of up to 1 s), snapshots every
// 2,000 entries, revision-based auto-compaction keeping 10,000 revisions, and
// no HTTP gateway. Measured on linux/amd64 (2 cores) in one process with
// the embedded member, a client, a registration, a won election and a
// watched image: serving metadata 0.1-0.25 s after StartEmbedded is called;
// about 29 MB RSS on a fresh data directory and 45-50 MB after a restart
// (100 topics of 10 partitions add about 2 MB). Only 5-10 MB of that is
// anonymous memory (Go heap about 5 MB); the rest is the mapped binary and
// bbolt's database file, which etcd maps with MAP_POPULATE and grows in
// 16 MB steps, so file-backed RSS follows the database size, which
// compaction keeps small. The member's WAL preallocates 64 MB
// segments on disk.
//
// etcd's zap logs go to slog: Error as Error (except during Close and one
// known-benign startup error), all else at Debug, with component=etcd-server
// or etcd-client.
//
// # Ownership and locks
//
// Store is stateless. A Registration's lease is kept alive by its
// concurrency.Session. A Controller's mu serialises its writes (held across
// etcd calls on purpose, so that the transactions of one CreateTopic never
// interleave with another write of the same controller); nothing else is
// locked while it is held. MetadataView.mu guards only the change channel
// and the subscriber set and is never held during etcd calls. No lock of
// this package is taken while another is held.
package etcd

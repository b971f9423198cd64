// Package group is the consumer-group coordinator: JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete,
// DescribeGroups, ListGroups, DeleteGroups and the KIP-848 consumer protocol
// (ConsumerGroupHeartbeat, ConsumerGroupDescribe) with Apache Kafka's semantics,
// made durable in the __consumer_offsets topic in Kafka's own record formats.
//
// It imports kmsg/kerr/kbin, protocol/batch, coordinator/runtime and the
// standard library only. The broker hands each Shard a Log (its
// __consumer_offsets partition) and routes every group to the shard of
// PartitionFor(group, partitions).
//
// # Ownership
//
// A Shard is one goroutine (the loop, a runtime.Loop) that owns every group
// of its partition: group state machines, members, timers and committed
// offsets. Public methods submit a closure to the loop and wait for its
// answer; there are no locks around group state. Timers (session, rebalance, sync, initial
// delay, retention) fire on their own goroutines and post a closure to the
// loop, carrying a token so that a stale timer is ignored.
//
// State comes in two kinds, as in Kafka's classic coordinator:
//
//   - Durable state — committed offsets and each group's stored metadata
//     (generation, protocol, leader, members with their subscriptions and
//     assignments, as of the last completed rebalance) — changes only by
//     replaying records. A write builds records, appends them to the Log as
//     one batch on a writer goroutine (appends are chained so they reach the
//     log in submission order) and, once Append returns, the loop replays the
//     records and only then releases the response. Load replays the log from
//     its start through the same function, so a failover recovers exactly
//     what clients were told is committed.
//   - Live membership — members joining, rebalance phases, pending
//     KIP-394 member IDs, heartbeat deadlines, callers waiting in JoinGroup
//     or SyncGroup — is in memory only and is lost on failover; clients
//     rejoin, exactly as with Kafka.
//
// Replaying a GroupMetadata record into a group that is live merges: members
// still present keep their ephemeral fields; the CompletingRebalance ->
// Stable transition of the generation being synced happens in replay. A
// record for a generation the live group has already moved past is ignored
// in memory (the log keeps it for the next load).
//
// # Record formats (__consumer_offsets)
//
// Records are written in uncompressed magic-2 batches with producer ID -1,
// epoch -1, sequence -1 (transactional commits: see below), CRC-32C, all
// records of one write in one batch (a write is atomic). Keys and values are Kafka's, encoded with kmsg:
//
//	key version 0|1  OffsetCommitKey   int16 version, string group,
//	                                   string topic, int32 partition
//	  value          OffsetCommitValue v3: int16 version, int64 offset,
//	                                   int32 leader epoch, string metadata,
//	                                   int64 commit timestamp (ms)
//	                                   (v1, with int64 expire timestamp, when
//	                                   an OffsetCommit v2-4 asked for a
//	                                   retention time)
//	key version 2    GroupMetadataKey  int16 version, string group
//	  value          GroupMetadataValue v3: protocol type, generation,
//	                                   protocol, leader, current state
//	                                   timestamp, members (member ID, instance
//	                                   ID, client ID, host, rebalance and
//	                                   session timeouts, subscription,
//	                                   assignment)
//
// Kafka writes key version 1 for offsets, 2 for groups, and value versions
// 3 (GROUP_METADATA_VALUE_VERSION and the highest non-flexible
// OffsetCommitValue), which this package matches. A null value is a
// tombstone: offset deleted, or group metadata deleted (offsets are
// tombstoned separately). Replay reads every value version kmsg knows
// (offset values 0-4, group values 0-4) and skips, with a debug log, keys of
// other versions (share and streams group records, KIP-848 regex records)
// and undecodable records.
//
// # KIP-848 consumer groups (consumer*.go)
//
// ConsumerGroupHeartbeat and ConsumerGroupDescribe serve groups of the
// "consumer" protocol: server-side assignors (uniform, range), group epoch,
// target assignment epoch, and per-member reconciliation (states STABLE 0,
// UNREVOKED_PARTITIONS 1, UNRELEASED_PARTITIONS 2). A group ID is either a
// classic or a consumer group (group.cg set). A consumer heartbeat may
// replace an empty classic group (its metadata tombstoned, offsets kept);
// a JoinGroup may replace an empty consumer group; a JoinGroup to a
// consumer group with members answers INCONSISTENT_GROUP_PROTOCOL — Kafka
// 4's online migration between the protocols is not implemented.
// Operations on one consumer group are serialised around its writes (see
// consumer.go). Regex subscriptions are resolved against Config.Topics
// (every topic, internal ones included, as in Kafka) at each heartbeat and
// not stored (Kafka's ConsumerGroupRegularExpression records, key 16, are
// not written); Go RE2 syntax stands in for Java's.
// Members' sessions restart at load.
//
// Their records (Kafka's coordinator record types 3-8) are encoded here,
// as kmsg has no types for them. A key is the int16 type followed by
// non-flexible fields (int16-length strings); a value is int16 version 0
// followed by flexible fields (compact strings and arrays as unsigned
// varint length+1, uuid as 16 bytes, every struct ending with a tagged
// field section, written empty; unknown tags are skipped on read):
//
//	key 3  ConsumerGroupMetadataKey           group
//	  value int32 epoch
//	key 4  ConsumerGroupPartitionMetadataKey  group
//	  value [topic id, name, int32 partitions, [partition, [rack]] (empty)]
//	key 5  ConsumerGroupMemberMetadataKey     group, member
//	  value nullable instance ID, nullable rack ID, client ID, client host,
//	        [subscribed topic], nullable regex, int32 rebalance timeout,
//	        nullable server assignor (tag 0, classic member metadata, is
//	        never written and skipped on read)
//	key 6  ConsumerGroupTargetAssignmentMetadataKey  group
//	  value int32 assignment epoch
//	key 7  ConsumerGroupTargetAssignmentMemberKey    group, member
//	  value [topic id, [int32 partition]]
//	key 8  ConsumerGroupCurrentMemberAssignmentKey   group, member
//	  value int32 member epoch, int32 previous member epoch, int8 state,
//	        assigned [topic id, [partition]], pending revocation (same)
//
// Writes follow Kafka's order (member, partition metadata, epoch, target
// members, target epoch, current assignment; tombstones current, target,
// member, then target epoch, partition metadata, epoch), so a load replays
// the same transitions.
//
// # Transactional offset commits (txn.go)
//
// TxnOffsetCommit writes its OffsetCommit records (the same key and value
// versions) in one transactional batch: attributes bit 4 set, the
// request's producer ID and epoch, base sequence -1 (a coordinator write:
// the log checks the producer's epoch, not the sequence). Replaying such a record does not touch the group's
// committed offsets: the offset is pending under its producer ID (Kafka's
// pendingTransactionalOffsets, and openTransactionsByGroup for the reverse
// index). The transaction coordinator's marker writer appends a control
// batch (attributes bits 4 and 5, that producer ID; one record whose key is
// int16 version 0 and int16 type, 0 abort or 1 commit) and calls
// CompleteTransaction, which is the replay of that marker; Load replays
// markers it meets in the log through the same function, and batches in
// log order, so a transaction open at the end of the log stays pending.
//
// Completing: an abort drops the producer's pending offsets; a commit makes
// each the group's committed offset unless the group's current offset was
// written later in the log (every offset remembers its record's offset,
// so a plain commit made after a transactional one wins, as in Kafka 4).
// An offset tombstone deletes the pending offsets of its partition too.
// DeleteGroups and OffsetDelete tombstone partitions that only open
// transactions wrote; offset expiry keeps partitions with pending offsets
// and never deletes a group with an open transaction; OffsetFetch with
// require_stable answers UNSTABLE_OFFSET_COMMIT for a pending partition.
package group

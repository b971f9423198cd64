// Package txn is the transaction coordinator: InitProducerId (with a
// transactional ID), AddPartitionsToTxn (including the KIP-890 verify-only
// and implicit-add paths), AddOffsetsToTxn, EndTxn, DescribeTransactions and
// ListTransactions with Apache Kafka's semantics, made durable in the
// __transaction_state topic in Kafka's own record formats.
//
// It imports kmsg/kerr, protocol/batch, coordinator/runtime and the
// standard library only. The broker hands each Shard a Log (its
// __transaction_state partition), a ProducerIDAllocator and a MarkerWriter,
// and routes every transactional ID to the shard of PartitionFor(id,
// partitions).
//
// # Ownership
//
// A Shard is one goroutine (the loop, a runtime.Loop) that owns every
// transactional ID of its partition. Public methods submit a closure to the
// loop and wait for its answer; there are no locks, so there is no lock
// order. Work that
// blocks runs on goroutines that post their result back to the loop:
// appends to the Log (chained, so batches reach the log and are replayed in
// submission order), producer ID allocation, marker writes, and the
// periodic timeout and expiry checks (timers).
//
// State comes in two kinds:
//
//   - Durable state — per transactional ID, exactly the fields of its
//     latest TxnMetadataValue — changes only by replaying records. A
//     request builds the next state, appends it as a record and, once
//     Append returns (the record is committed), the loop replays it and
//     only then answers. Load replays the log from its start through the
//     same function, so a failover recovers what clients were told.
//   - Ephemeral state — Kafka's pending transition (a write, allocation or
//     marker round in flight, answered CONCURRENT_TRANSACTIONS), the last
//     producer epoch used for KIP-360 retries, and broker-path requests
//     waiting for the transaction to settle — lives in memory only, as in
//     Kafka, and is lost on failover.
//
// # Transaction life
//
//	Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit|PrepareAbort
//	  ▲                                                │ markers to every partition
//	  └─InitProducerId── CompleteCommit|CompleteAbort ◀┘ (then the Complete record)
//
// EndTxn answers once the Prepare record is committed; markers follow in
// the background and are retried until written or the shard closes. A
// transaction found in a Prepare state at Load is completed the same way.
// InitProducerId for an ID with an Ongoing transaction, and the timeout
// check (transaction.abort.timed.out.transaction.cleanup.interval.ms),
// abort it with a bumped epoch, fencing the producer; Kafka's
// PrepareEpochFence state is never written. With transactions v2 (EndTxn
// v5+, KIP-890) every EndTxn bumps the epoch and markers carry it, so a
// late marker or produce of an ended transaction is fenced (KAFKA-17754).
// Markers carry the __transaction_state leader epoch given to NewShard as
// their coordinator epoch.
//
// # Record format (__transaction_state)
//
// Records are written in uncompressed magic-2 batches with producer ID -1,
// epoch -1, sequence -1, CRC-32C; one write is one batch. Keys and values
// are Kafka's, encoded with kmsg:
//
//	key   TxnMetadataKey   v0: int16 version (0), string transactional ID
//	value TxnMetadataValue v1 (flexible): int16 version, int64 producer ID,
//	                       int16 producer epoch, int32 timeout ms,
//	                       int8 state (Empty 0, Ongoing 1, PrepareCommit 2,
//	                       PrepareAbort 3, CompleteCommit 4, CompleteAbort 5,
//	                       Dead 6, PrepareEpochFence 7), compact nullable
//	                       array of {topic, [partition]} (null when Empty),
//	                       int64 last update ms, int64 start ms (-1 when no
//	                       transaction started), tagged fields: 0 previous
//	                       producer ID, 1 next producer ID, 2 client
//	                       transaction version (0 or 2), 3 next epoch
//	                       (unused); tags at their default are omitted.
//
// Value version 1 is what Kafka 4 writes once transaction.version >= 1.
// Unlike Kafka 4.0, the previous/next producer IDs are filled in, so an
// epoch overflow in the middle of a TV2 commit survives a failover. A null
// value is a tombstone: the ID expired (transactional.id.expiration.ms,
// checked every transaction.remove.expired.transaction.cleanup.interval.ms).
// Replay reads value versions 0 and 1 and skips, with a debug log, records
// with other key versions and undecodable records; control batches are
// ignored.
package txn

// Package runtime is the plumbing the group and transaction coordinators
// share, after Kafka's CoordinatorRuntime: one goroutine (a Loop) per
// partition of their internal topic (__consumer_offsets,
// __transaction_state) that owns the shard's state, the way requests reach
// it, the appends of its records, and the replay through which alone that
// state changes, at load and live. What the two coordinators do with their
// records stays in coordinator/group and coordinator/txn.
//
// It imports kmsg/kerr, protocol/batch and the standard library only.
//
// # Ownership
//
// A Loop runs closures one at a time on its goroutine, and the
// coordinator's state is touched only there, so there are no locks and no
// lock order. A request submits a closure with Call and waits for the value
// the closure replies, possibly later (once a write is committed, a
// rebalance completes). Timers (After) and background work (Go) hand their
// results back with Post. Close stops the goroutine, cancels the context of
// appends and background work and waits for them.
//
// # Writes and replay
//
// Append encodes records as one batch and appends it to the Log on its own
// goroutine. Appends are chained, so batches reach the log, and are
// replayed, in submission order while the loop keeps serving. Once the log
// committed a batch (Log.Append returned), the loop replays its records
// through Config.Replay and only then calls the writer back, which answers
// the request. Load replays the log from its start through the same
// function, so a failover recovers exactly what clients were told is
// committed.
//
// # Loading
//
// Until Load completed, requests answer COORDINATOR_LOAD_IN_PROGRESS. A
// Loop loads once: a failed Load (a read error, the log closed) leaves the
// shard unloaded with part of the log replayed, so it is not loaded again.
// RetryLoad is the retry its owner runs instead (the broker, for every
// shard it starts, for as long as it leads the partition): each attempt
// after the first builds a new shard, loaded from the log start, in place
// of the failed one, which is closed; attempts are spaced by a backoff
// doubling from 100ms to 10s, with jitter. The first failure is logged at
// Warn, later ones at most once a minute with their count, and a load that
// succeeds after failures once at Info.
//
// # Batches
//
// BuildBatch writes the uncompressed magic-2 batches both topics hold:
// CRC-32C, base offset 0 (the log assigns the real one), partition leader
// epoch -1, sequence -1, producer ID and epoch -1 unless a transactional
// producer writes (attributes bit 4 set, the producer's ID and epoch).
// Decode reads batches back and turns a control batch's commit and abort
// records into transaction markers (Entry.Marker).
package runtime

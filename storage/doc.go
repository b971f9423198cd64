// Package storage keeps partition logs on disk in Apache Kafka's layout, so
// operators find the files they know.
//
// # Directory layout
//
//	<log.dir>/.kafka_cleanshutdown            present only between a clean stop and the next start
//	<log.dir>/replication-offset-checkpoint   high watermarks of the partitions in this dir (written by the broker)
//	<log.dir>/<topic>-<partition>/            PartitionDirName; "-delete"/"-future"/"-stray" names are not partitions
//	    00000000000000000000.log              segment: batches, named by the 20-digit base offset
//	    00000000000000000000.index            its offset index
//	    00000000000000000000.timeindex        its time index
//	    00000000000000000000.txnindex         its aborted transactions (only once it has one)
//	    00000000000000004711.snapshot         producer state at offset 4711 (the newest two are kept)
//	    00000000000000004711.log ...          the next segment starts where the previous ended
//	    partition.metadata                    topic ID
//	    leader-epoch-checkpoint               leader epoch cache
//	    log-start-offset-checkpoint           log start offset (per partition here, per log dir in Kafka)
//	    cleaner-offset-checkpoint             compaction progress (per partition here, per log dir in Kafka)
//	    <segment file>.deleted                a segment left the log; unlinked after file.delete.delay.ms
//	    <segment file>.cleaned / .swap        a compaction in progress (see Compaction)
//
// # Segment files (.log)
//
// A segment is record batches (format: package protocol/batch) written back
// to back exactly as producers and leaders sent them, with their base
// offsets and partition leader epochs already assigned. Batch offsets only
// grow; every offset in a segment lies in [base, next segment's base) and
// fits a relative int32, and a segment stays below 2 GiB so positions fit an
// int32 too. Segments are append-only; truncation cuts a file at a batch
// boundary.
//
// # Offset index (.index)
//
// A sequence of 8-byte big-endian entries:
//
//	0  relative offset int32  last offset of the batch at position, minus the segment base
//	4  position        int32  byte position of that batch in the .log file
//
// One entry is added for a batch once more than index.interval.bytes were
// appended since the previous entry (Kafka's rule, applied per batch), so
// both fields strictly increase. A lookup binary-searches for the last entry
// at or below the wanted offset and walks batch headers from its position.
//
// # Time index (.timeindex)
//
// A sequence of 12-byte big-endian entries:
//
//	0  timestamp       int64  largest batch max timestamp in the segment so far
//	8  relative offset int32  last offset of the batch that first carried it
//
// An entry is added alongside each offset entry when the segment's largest
// timestamp grew, so timestamps strictly increase. When a segment is sealed
// (rolled or closed) a final entry records its largest timestamp, which is
// how a sealed segment's maximum is known without reading it.
//
// Neither index is preallocated: a file always holds whole entries and
// nothing else. While a segment is active its index entries live in memory
// and are written out at roll and Close (an unclean stop rebuilds them by
// recovery); sealed segments are searched in the file with preads, so memory
// does not grow with the number of segments. segment.index.bytes caps the
// entries of the active segment: a full index rolls the segment.
//
// # Transaction index (.txnindex)
//
// Kafka's TransactionIndex: 34-byte big-endian entries, one per aborted
// transaction, in the segment that was active when its ABORT marker was
// written, in marker order:
//
//	0   version            int16  0
//	2   producer ID        int64
//	10  first offset       int64  the transaction's first data offset
//	18  last offset        int64  the marker's offset
//	26  last stable offset int64  first offset of the earliest other open transaction, else last offset + 1
//
// AbortedTransactions reads the index of the segment holding the fetch
// offset and of later ones, until an entry's last stable offset reaches the
// fetch's upper bound. The active segment's entries are fsynced at roll and
// Close; after a crash Open rewrites the entries at or above the snapshot
// it replays from. Truncation drops entries whose last offset is cut; a
// cleaned segment carries the entries of the segments it replaces (the
// cleaner keeps every control batch) and is swapped in with them
// ("<base>.txnindex.cleaned" / ".swap", renamed before the .log).
//
// # Producer state snapshots (.snapshot)
//
// Kafka's ProducerStateManager format, version 1, named by the 20-digit
// offset the state covers up to (exclusive):
//
//	0  version int16   1
//	2  crc     uint32  CRC-32C of every byte after this field
//	6  count   int32   entries, then per entry (46 bytes, by producer ID):
//	   producer ID int64, producer epoch int16, last sequence int32,
//	   last offset int64 (-1: no data batch), offset delta int32 (last
//	   offset - first offset of the last batch), timestamp int64 (of the
//	   last write), coordinator epoch int32, current txn first offset int64
//	   (-1: none)
//
// As in Kafka a snapshot keeps only each producer's last batch, so after a
// restart duplicates of that batch and of later ones are recognised. One is
// written (atomically) at every roll, at the new segment's base, and at
// Close, at the log end; the two newest are kept, and those below the first
// segment go with retention (but never the newest). Open deletes snapshots
// above the recovered log end and corrupt ones (with a warning), loads the
// newest remaining one, dropping producers already expired, and replays the
// batches after it (the whole log without one), then writes a snapshot at
// the log end when it replayed anything. Truncation deletes the snapshots
// above the new end and rebuilds the same way.
//
// # partition.metadata
//
// Kafka's PartitionMetadataFile text:
//
//	version: 0
//	topic_id: <16-byte topic ID, base64url without padding (22 chars), as Kafka's Uuid.toString>
//
// # leader-epoch-checkpoint
//
// Kafka's checkpoint text format: a version line "0", a line with the
// number of entries, then one "<epoch> <start offset>" line per entry in
// increasing order.
//
// # log-start-offset-checkpoint
//
// Kafka keeps one file per log dir listing every partition; a Log owns only
// its directory, so it keeps its own, in Kafka's checkpoint text style:
//
//	0                     version
//	<log start offset>
//
// It is written (atomically) whenever the log start offset changes, before
// any segment the change makes unreachable is deleted. Open takes the larger
// of it and the first segment's base offset; a value above the recovered log
// end empties the log and restarts it there, as Kafka's LogLoader does.
//
// # replication-offset-checkpoint
//
// One per log dir, as in Kafka (OffsetCheckpointFile), written atomically
// by the broker every replica.high.watermark.checkpoint.interval.ms and at a
// clean stop; a replica starts at min(value, recovered log end):
//
//	0                                version
//	<count>
//	<topic> <partition> <offset>     one line per partition, sorted
//
// # cleaner-offset-checkpoint
//
//	0                     version
//	<first dirty offset>  everything below was cleaned against the keys after it
//	<delete horizon ms>   earliest delete horizon of a kept tombstone, -1 none
//
// Written by the cleaner after each pass. A value outside [log start, active
// segment base] restarts cleaning from the log start (Kafka's rule).
//
// # Retention
//
// ApplyRetention deletes whole closed segments from the front (by largest
// timestamp against retention.ms, by total size against retention.bytes,
// and segments below the log start offset), never the active one and never
// past the stable offset (SetStableOffset). A deleted segment leaves the
// list at once; its files are renamed "<name>.deleted" and unlinked
// file.delete.delay.ms later by the next ApplyRetention or Compact call, by
// Close, or by Open after a crash. The delay is kept for operators who
// expect Kafka's behaviour; readers do not need it, since a ReadResult holds
// its file open.
//
// # Compaction
//
// Compact rewrites the closed segments keeping the last record of each key
// (rules: batchFilter.filter). Cleaned batches keep their base offset and
// last offset delta, so offsets inside a batch may have gaps. A batch whose
// tombstones were cleaned once carries a delete horizon (attribute bit 6,
// KIP-534): its FirstTimestamp is the time after which the tombstones go,
// and its records' timestamp deltas are re-based so their timestamps stay.
// Consecutive segments are merged into one cleaned segment while they fit
// segment.bytes. A cleaned segment replaces the old ones in this order:
//
//  1. write <base>.log.cleaned, .index.cleaned, .timeindex.cleaned and fsync
//     them (no lock held);
//  2. under the writer lock, check that the old segments are still there and
//     no truncation happened, else remove the .cleaned files and give up;
//  3. rename the .cleaned files to .swap, indexes first, the .log last: the
//     .log.swap rename is the commit point; fsync the directory;
//  4. rename every file of the old segments to .deleted;
//  5. rename the .swap files to their final names, the .log last; fsync
//     the directory; swap the segment list.
//
// Open repairs an interrupted swap before it loads the segments: .cleaned
// and .deleted files are removed; a <base>.log.swap removes every segment
// whose base offset lies in [base, end of the swap file's batches) (at least
// the one at base), becomes <base>.log, and gets its indexes rebuilt; index
// .swap files without their .log.swap are removed.
//
// # .kafka_cleanshutdown
//
// Written last on a clean stop, consumed (read and deleted) first at start.
// Its JSON content mirrors Kafka's ({"version":"0","broker_epoch":"-1"});
// only its presence matters.
//
// # Durability
//
// Append writes with one pwrite and fsyncs only per flush.messages /
// flush.ms. Rolling fsyncs the old segment and its indexes before creating
// the next segment, so only the newest segment can hold unsynced bytes.
// Checkpoint and metadata files are replaced atomically (write temp file,
// fsync, rename, fsync directory). A failed write or fsync is sticky: the
// Log answers ErrLogFailed from then on and the owner takes the log dir
// offline.
//
// # Recovery
//
// After an unclean stop the newest segment is re-read batch by batch from
// position 0; the first batch that is torn, fails its CRC-32C, or has an
// offset below its predecessor's is cut off with everything after it, in one
// warning, and the segment's indexes are rebuilt. Index files of any segment
// that are missing or fail the sanity checks (size, order, range, first and
// last entries pointing at real batches) are rebuilt the same way. Epochs
// found on recovered batches are added to the leader epoch cache, which is
// then trimmed to the log end offset.
//
// # Concurrency and lock order
//
// A Log has one writer at a time (wmu) and any number of readers. The
// producer state (idempotence, open transactions) is the writer's: it is
// checked and changed under wmu together with the append, and its first
// unstable offset is published atomically for readers. The
// background maintenance (ApplyRetention, Compact) is serialised by cleanMu
// and takes wmu only to change the segment list.
//
//	Log.cleanMu  →  Log.wmu  →  Log.mu  →  LeaderEpochCache.writeMu  →  LeaderEpochCache.mu
//	Log.ckptMu and Log.pendMu are leaves: nothing is taken while they are held.
//
// The writer takes Log.mu for writing only to publish what it wrote (segment
// list, sizes, in-memory index entries) and, rarely, during truncation;
// writes and fsyncs happen outside it, so readers are never blocked behind a
// disk flush. Readers hold Log.mu for reading while they look up positions,
// then take a reference on the segment's .log file and let go of the lock;
// the file is closed when its last reference is released.
package storage

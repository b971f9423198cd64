package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Sentinel errors, wrapped with context; test them with errors.Is.
var (
	// ErrOffsetOutOfRange: a read below the log start or above the log end
	// (OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrLogFailed: a write or fsync failed earlier. The failure is sticky;
	// every later Append, Flush and truncation returns it wrapping the cause
	// (KAFKA_STORAGE_ERROR; the log dir should go offline).
	ErrLogFailed = errors.New("storage: log failed")
	// ErrClosed: the Log was closed or deleted.
	ErrClosed = errors.New("storage: log closed")
	// ErrInvalidAppend: the batches passed to Append do not start at the log
	// end offset, are not contiguous, or are malformed.
	ErrInvalidAppend = errors.New("storage: invalid append")
	// ErrRecordBatchTooLarge: a batch larger than segment.bytes
	// (RECORD_BATCH_TOO_LARGE).
	ErrRecordBatchTooLarge = errors.New("storage: record batch larger than segment")
	// ErrCorruptFile: a checkpoint or metadata file that does not parse.
	ErrCorruptFile = errors.New("storage: corrupt file")
	// ErrInvalidConfig: a LogConfig value out of range.
	ErrInvalidConfig = errors.New("storage: invalid config")
)

// LogConfig holds the per-topic settings the log itself enforces. Field
// comments name the Kafka topic config and its broker-wide default key.
type LogConfig struct {
	// SegmentBytes (segment.bytes / log.segment.bytes): roll the active
	// segment before an append would take it past this size.
	SegmentBytes int64
	// SegmentMs (segment.ms / log.roll.ms): roll when the incoming batches'
	// max timestamp is this much newer than the max timestamp of the
	// segment's first append, or, when that has no timestamp, when the
	// segment was created this long ago (Kafka's timeWaitedForRoll).
	SegmentMs int64
	// IndexIntervalBytes (index.interval.bytes): add an offset and time
	// index entry once more than this many bytes were appended since the
	// last entry.
	IndexIntervalBytes int
	// SegmentIndexBytes (segment.index.bytes): index capacity; the segment
	// rolls when its offset or time index holds this many bytes of entries.
	SegmentIndexBytes int
	// FlushIntervalMessages (flush.messages): fsync once this many offsets
	// were appended since the last fsync.
	FlushIntervalMessages int64
	// FlushIntervalMs (flush.ms): fsync when the oldest unflushed append is
	// this old. Checked on Append and by FlushIfDue, which the owner of many
	// logs calls from one ticker.
	FlushIntervalMs int64

	// Delete and Compact are cleanup.policy (log.cleanup.policy): "delete"
	// sets Delete, "compact" sets Compact, "compact,delete" both.
	// ApplyRetention enforces RetentionMs and RetentionBytes only with
	// Delete; Compact cleans only with Compact.
	Delete  bool
	Compact bool
	// RetentionMs (retention.ms / log.retention.ms): a closed segment whose
	// largest timestamp is older than this is deleted; -1 keeps segments
	// forever.
	RetentionMs int64
	// RetentionBytes (retention.bytes / log.retention.bytes): the oldest
	// closed segments are deleted while the log would stay at or above this
	// size without them; negative is unlimited.
	RetentionBytes int64
	// FileDeleteDelayMs (file.delete.delay.ms): a deleted segment's files are
	// renamed with a ".deleted" suffix and unlinked this much later.
	FileDeleteDelayMs int64
	// DeleteRetentionMs (delete.retention.ms / log.cleaner.delete.retention.ms):
	// how long the cleaner keeps a tombstone after it first cleaned it.
	DeleteRetentionMs int64
	// MinCompactionLagMs (min.compaction.lag.ms): records in a segment whose
	// largest timestamp is newer than this are not compacted.
	MinCompactionLagMs int64
	// MinCleanableDirtyRatio (min.cleanable.dirty.ratio): compaction runs
	// only when the bytes not yet cleaned make up at least this share of
	// the closed segments.
	MinCleanableDirtyRatio float64
	// CleanerDedupeBufferBytes caps the cleaner's key map for one Compact
	// call (Kafka's log.cleaner.dedupe.buffer.size, which its cleaner
	// threads share); 0 means DefaultCleanerDedupeBufferBytes. When the map
	// fills, the cleaner works in several passes.
	CleanerDedupeBufferBytes int64
	// ProducerIDExpirationMs (producer.id.expiration.ms, a broker setting in
	// Kafka): RemoveExpiredProducers forgets a producer without an open
	// transaction once its last write is this old; 0 means the default,
	// DefaultProducerIDExpirationMs.
	ProducerIDExpirationMs int64
}

// DefaultProducerIDExpirationMs is Kafka's producer.id.expiration.ms default
// (one day).
const DefaultProducerIDExpirationMs = 86400000

// DefaultCleanerDedupeBufferBytes is the key map size of one Compact call
// when LogConfig.CleanerDedupeBufferBytes is 0.
const DefaultCleanerDedupeBufferBytes = 16 << 20

// minDedupeBufferBytes is the smallest key map accepted: a few dozen keys.
const minDedupeBufferBytes = 1 << 10

// NewLogConfig returns Kafka's defaults.
func NewLogConfig() LogConfig {
	return LogConfig{
		SegmentBytes:          1 << 30,
		SegmentMs:             7 * 24 * time.Hour.Milliseconds(),
		IndexIntervalBytes:    4096,
		SegmentIndexBytes:     10 << 20,
		FlushIntervalMessages: math.MaxInt64,
		FlushIntervalMs:       math.MaxInt64,

		Delete:                   true,
		RetentionMs:              7 * 24 * time.Hour.Milliseconds(),
		RetentionBytes:           -1,
		FileDeleteDelayMs:        60000,
		DeleteRetentionMs:        24 * time.Hour.Milliseconds(),
		MinCompactionLagMs:       0,
		MinCleanableDirtyRatio:   0.5,
		CleanerDedupeBufferBytes: DefaultCleanerDedupeBufferBytes,
		ProducerIDExpirationMs:   DefaultProducerIDExpirationMs,
	}
}

// Validate checks the ranges Kafka enforces, plus what the index format
// needs: positions are int32, so a segment stays below 2 GiB.
func (c LogConfig) Validate() error {
	switch {
	case c.SegmentBytes < batch.HeaderSize || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("%w: segment.bytes %d not in [%d, %d]", ErrInvalidConfig, c.SegmentBytes, batch.HeaderSize, math.MaxInt32)
	case c.SegmentMs < 1:
		return fmt.Errorf("%w: segment.ms %d < 1", ErrInvalidConfig, c.SegmentMs)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("%w: index.interval.bytes %d < 0", ErrInvalidConfig, c.IndexIntervalBytes)
	case c.SegmentIndexBytes < 4:
		return fmt.Errorf("%w: segment.index.bytes %d < 4", ErrInvalidConfig, c.SegmentIndexBytes)
	case c.FlushIntervalMessages < 1:
		return fmt.Errorf("%w: flush.messages %d < 1", ErrInvalidConfig, c.FlushIntervalMessages)
	case c.FlushIntervalMs < 0:
		return fmt.Errorf("%w: flush.ms %d < 0", ErrInvalidConfig, c.FlushIntervalMs)
	case c.RetentionMs < -1:
		return fmt.Errorf("%w: retention.ms %d < -1", ErrInvalidConfig, c.RetentionMs)
	case c.FileDeleteDelayMs < 0:
		return fmt.Errorf("%w: file.delete.delay.ms %d < 0", ErrInvalidConfig, c.FileDeleteDelayMs)
	case c.DeleteRetentionMs < 0:
		return fmt.Errorf("%w: delete.retention.ms %d < 0", ErrInvalidConfig, c.DeleteRetentionMs)
	case c.MinCompactionLagMs < 0:
		return fmt.Errorf("%w: min.compaction.lag.ms %d < 0", ErrInvalidConfig, c.MinCompactionLagMs)
	case !(c.MinCleanableDirtyRatio >= 0 && c.MinCleanableDirtyRatio <= 1):
		return fmt.Errorf("%w: min.cleanable.dirty.ratio %v not in [0, 1]", ErrInvalidConfig, c.MinCleanableDirtyRatio)
	case c.ProducerIDExpirationMs < 0:
		return fmt.Errorf("%w: producer.id.expiration.ms %d < 0", ErrInvalidConfig, c.ProducerIDExpirationMs)
	case c.CleanerDedupeBufferBytes != 0 && c.CleanerDedupeBufferBytes < minDedupeBufferBytes:
		return fmt.Errorf("%w: cleaner dedupe buffer %d bytes < %d", ErrInvalidConfig, c.CleanerDedupeBufferBytes, minDedupeBufferBytes)
	}
	return nil
}

// Options are the process-level dependencies of a Log.
type Options struct {
	// Logger receives the log's lines. It must identify the log (the
	// replica's carries topic and partition), since Open adds nothing to
	// it; nil means slog.Default() with the topic and partition parsed from
	// the directory name (or the directory).
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	FS     FS               // nil: OSFS
	// OnFailure, when set, is told of the log's sticky failure (a write,
	// fsync or rename that failed: ErrLogFailed from then on), once, as it
	// happens, so the owner can take the log dir offline. It runs on the
	// failing caller's goroutine, possibly under the log's locks: it must
	// not block or call back into the log.
	OnFailure func(err error)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	return o
}

// producerExpirationMs is ProducerIDExpirationMs with 0 read as the default.
func (c LogConfig) producerExpirationMs() int64 {
	if c.ProducerIDExpirationMs == 0 {
		return DefaultProducerIDExpirationMs
	}
	return c.ProducerIDExpirationMs
}

package txn

import (
	"math"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Config holds the transaction coordinator settings, named after Kafka's
// broker configs. DefaultConfig returns Kafka's defaults; zero fields of a
// Config passed to NewShard are filled from it (except
// ConcurrentTransactionsWait, where zero means "do not wait").
type Config struct {
	// NumPartitions is transaction.state.log.num.partitions. The shard does
	// not use it (the broker routes by the topic's real partition count);
	// it is kept for PartitionFor callers and logs.
	NumPartitions int32
	// MaxTimeout is transaction.max.timeout.ms: InitProducerId with a larger
	// transaction timeout answers INVALID_TRANSACTION_TIMEOUT.
	MaxTimeout time.Duration
	// AbortTimedOutInterval is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms: how often
	// the shard looks for transactions open longer than their timeout.
	AbortTimedOutInterval time.Duration
	// TransactionalIDExpiration is transactional.id.expiration.ms: an idle
	// transactional ID (no transaction open) is tombstoned after this long.
	TransactionalIDExpiration time.Duration
	// RemoveExpiredInterval is
	// transaction.remove.expired.transaction.cleanup.interval.ms.
	RemoveExpiredInterval time.Duration
	// MarkerRetryBackoff is the pause between attempts to write markers or
	// a completion record that failed (Kafka retries with retry.backoff.ms).
	MarkerRetryBackoff time.Duration
	// TransactionVersion is the cluster's finalized transaction.version
	// feature (2 on a fresh Kafka 4 cluster). It decides how the coordinator
	// itself ends a transaction it aborts (timeout, fencing): at 2 the
	// abort bumps the epoch once more, as EndTxn v5 does.
	TransactionVersion int16
	// ConcurrentTransactionsWait is how long the broker-side add-partitions
	// paths (AddPartitionsForProduce, AddPartitionsToTxn v4+ without
	// VerifyOnly) wait for a concurrent change of the same transaction to
	// finish before answering CONCURRENT_TRANSACTIONS. Kafka's partition
	// leader retries that error itself for up to
	// add.partitions.to.txn.retry.backoff.max.ms (100 ms); waiting here has
	// the same effect. Client requests never wait, as in Kafka.
	ConcurrentTransactionsWait time.Duration
	// Now is the clock for record timestamps, transaction timeouts and ID
	// expiry; nil means time.Now. The periodic checks themselves run on
	// real timers.
	Now func() time.Time
	// OnTimedOutAbort, if set, is called (on the shard's goroutine; it must
	// not block) for each transaction the coordinator starts aborting
	// because it outlived its timeout: the broker counts these.
	OnTimedOutAbort func(transactionalID string, producerID int64, producerEpoch int16)
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		NumPartitions:              50,
		MaxTimeout:                 15 * time.Minute,
		AbortTimedOutInterval:      10 * time.Second,
		TransactionalIDExpiration:  7 * 24 * time.Hour,
		RemoveExpiredInterval:      time.Hour,
		MarkerRetryBackoff:         100 * time.Millisecond,
		TransactionVersion:         2,
		ConcurrentTransactionsWait: 100 * time.Millisecond,
	}
}

// Validate reports settings Kafka would refuse.
func (c Config) Validate() error {
	var p runtime.Problems
	p.Reject(c.MaxTimeout < time.Millisecond || c.MaxTimeout > math.MaxInt32*time.Millisecond,
		"transaction.max.timeout.ms %v must be >= 1 ms and fit an int32 of ms", c.MaxTimeout)
	p.Reject(c.AbortTimedOutInterval <= 0, "transaction.abort.timed.out.transaction.cleanup.interval.ms %v must be > 0", c.AbortTimedOutInterval)
	p.Reject(c.TransactionalIDExpiration <= 0, "transactional.id.expiration.ms %v must be > 0", c.TransactionalIDExpiration)
	p.Reject(c.RemoveExpiredInterval <= 0, "transaction.remove.expired.transaction.cleanup.interval.ms %v must be > 0", c.RemoveExpiredInterval)
	p.Reject(c.TransactionVersion < 0 || c.TransactionVersion > 2, "transaction.version %d must be 0, 1 or 2", c.TransactionVersion)
	p.Reject(c.ConcurrentTransactionsWait < 0, "concurrent transactions wait %v must be >= 0", c.ConcurrentTransactionsWait)
	return p.Err(ErrInvalidConfig)
}

// withDefaults fills zero values that would make the shard misbehave.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	runtime.SetDefault(&c.MaxTimeout, d.MaxTimeout)
	runtime.SetDefault(&c.AbortTimedOutInterval, d.AbortTimedOutInterval)
	runtime.SetDefault(&c.TransactionalIDExpiration, d.TransactionalIDExpiration)
	runtime.SetDefault(&c.RemoveExpiredInterval, d.RemoveExpiredInterval)
	runtime.SetDefault(&c.MarkerRetryBackoff, d.MarkerRetryBackoff)
	if c.ConcurrentTransactionsWait < 0 {
		c.ConcurrentTransactionsWait = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// PartitionFor is the __transaction_state partition coordinating txnID:
// Kafka's Utils.abs(transactionalId.hashCode()) % numPartitions (see
// runtime.PartitionFor).
func PartitionFor(txnID string, numPartitions int32) int32 {
	return runtime.PartitionFor(txnID, numPartitions)
}

package runtime

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf16"
)

// PartitionFor is the partition of a coordinator topic with numPartitions
// partitions that coordinates key (a group ID or transactional ID):
// Kafka's Utils.abs(key.hashCode()) % numPartitions. The hash is Java's
// String.hashCode over UTF-16 code units, and Utils.abs maps MinInt32 to 0
// and otherwise takes the absolute value (it is not the x & 0x7fffffff of
// Utils.toPositive, which the producer's partitioner uses).
func PartitionFor(key string, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return 0
	}
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	switch {
	case h == math.MinInt32:
		h = 0
	case h < 0:
		h = -h
	}
	return h % numPartitions
}

// SetDefault sets *v to def unless *v is positive: a coordinator's
// Config.withDefaults fills the settings whose zero value would make a
// shard misbehave.
func SetDefault[T ~int | ~int32 | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Problems collects the settings a coordinator's Config.Validate refuses,
// so that one error names all of them.
type Problems struct {
	errs []error
}

// Reject records the problem format describes when bad holds.
func (p *Problems) Reject(bad bool, format string, args ...any) {
	if bad {
		p.errs = append(p.errs, fmt.Errorf(format, args...))
	}
}

// Err is nil without problems, else every problem joined and wrapped in
// sentinel (the package's ErrInvalidConfig).
func (p *Problems) Err(sentinel error) error {
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", sentinel, errors.Join(p.errs...))
}

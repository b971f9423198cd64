package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errShortRead reports a consumer that saw fewer, more, or different
// records than were produced.
var errShortRead = errors.New("bench: consumed records do not match produced")

// workload is one cell of the matrix: record size, acks, codec, count.
type workload struct {
	size       int    // value bytes per record; records have no key
	acks       string // "1" or "all"
	codec      string // "none" or "lz4"
	records    int
	partitions int32
}

func (w workload) String() string {
	return fmt.Sprintf("%s acks=%s %s", sizeName(w.size), w.acks, w.codec)
}

// sizeName renders a record size as the table shows it.
func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// producerOpts maps the workload's acks and codec onto franz-go options.
// acks=1 needs idempotence off (Kafka requires acks=all for idempotent
// producers); acks=all keeps franz-go's default idempotent producer, as a
// Java producer since 3.0 would. Linger and batching stay at defaults.
func (w workload) producerOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch w.acks {
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	default:
		return nil, fmt.Errorf("bench: unknown acks %q (want 1 or all)", w.acks)
	}
	switch w.codec {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	default:
		return nil, fmt.Errorf("bench: unknown codec %q (want none or lz4)", w.codec)
	}
	return opts, nil
}

// benchWords is the vocabulary payloads are built from: text-like data
// that lz4 compresses a few times over, rather than random bytes (which do
// not compress) or zeros (which compress absurdly well).
var benchWords = strings.Fields(`kafka broker partition offset leader
replica segment index record batch fetch produce consumer group commit
topic epoch watermark isr acks linger compression cluster etcd lease
timestamp header key value 0 1 2 3 4 5 6 7 8 9 alpha beta gamma delta`)

// makePayloads returns count distinct payloads of exactly size bytes,
// deterministic for a given seed so both brokers see identical data.
func makePayloads(size, count int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	out := make([][]byte, count)
	for i := range out {
		b := make([]byte, 0, size+16)
		for len(b) < size {
			b = append(b, benchWords[rng.IntN(len(benchWords))]...)
			b = append(b, ' ')
		}
		out[i] = b[:size]
	}
	return out
}

// createTopic creates topic with the given partition count (replication
// factor 1) and waits until every partition has a leader, so the first
// produce of a measured phase does not pay for topic creation.
func createTopic(ctx context.Context, addr, topic string, partitions int32, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A broker that has just come up may not have a controller yet and
	// answer with a retriable error; an earlier attempt that timed out on
	// our side may have succeeded, hence TOPIC_ALREADY_EXISTS after one.
	for attempt := 0; ; attempt++ {
		resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || (attempt > 0 && errors.Is(err, kerr.TopicAlreadyExists)) {
			break
		}
		if !kerr.IsRetriable(err) || ctx.Err() != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topic %s: %w (last error %v)", topic, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond): // retry backoff
		}
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && int32(len(td.Partitions)) == partitions && allLed(td) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leaders after %v (last metadata error %v): %w", topic, timeout, err, ctx.Err())
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

// allLed reports whether every partition of td has a leader and no error.
func allLed(td kadm.TopicDetail) bool {
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// deleteTopic removes topic to free disk between rows. Failures are
// returned for logging only: a broker that cannot delete still benches.
func deleteTopic(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, topic)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, resp.Err)
	}
	return nil
}

// produce writes w.records records, cycling through payloads, and returns
// once every record is acknowledged. The clock starts after the client
// exists and stops at the last acknowledgement.
func produce(ctx context.Context, addr, topic string, w workload, payloads [][]byte) (time.Duration, error) {
	opts, err := w.producerOpts()
	if err != nil {
		return 0, err
	}
	opts = append(opts, kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, fmt.Errorf("producer client: %w", err)
	}
	defer cl.Close()

	var (
		firstErr  error
		errOnce   sync.Once
		failed    atomic.Bool
		completed atomic.Int64
	)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	onDone := func(_ *kgo.Record, err error) {
		if err != nil {
			errOnce.Do(func() {
				firstErr = err
				failed.Store(true)
				cancel()
			})
			return
		}
		completed.Add(1)
	}

	start := time.Now()
	for i := 0; i < w.records && !failed.Load(); i++ {
		cl.Produce(pctx, &kgo.Record{Value: payloads[i%len(payloads)]}, onDone)
	}
	if err := cl.Flush(pctx); err != nil && !failed.Load() {
		return 0, fmt.Errorf("flush: %w", err)
	}
	elapsed := time.Since(start)
	if failed.Load() {
		return 0, fmt.Errorf("produce to %s: %w", topic, firstErr)
	}
	if got := completed.Load(); got != int64(w.records) {
		return 0, fmt.Errorf("produce to %s: %d of %d records acknowledged", topic, got, w.records)
	}
	return elapsed, nil
}

// consume reads topic from the start of every partition (no consumer
// group, so no rebalance delay is timed) until it has seen w.records
// records, checking sizes and that offsets only rise within a partition.
func consume(ctx context.Context, addr, topic string, w workload) (time.Duration, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return 0, fmt.Errorf("consumer client: %w", err)
	}
	defer cl.Close()

	next := make(map[int32]int64) // per partition: lowest offset not yet seen
	seen := 0
	var verr error
	start := time.Now()
	for seen < w.records {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("consume %s: %d of %d records: %w", topic, seen, w.records, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			e := errs[0]
			return 0, fmt.Errorf("consume %s partition %d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if verr != nil {
				return
			}
			if r.Offset < next[r.Partition] {
				verr = fmt.Errorf("%w: partition %d offset %d repeated or out of order", errShortRead, r.Partition, r.Offset)
			} else if len(r.Value) != w.size {
				verr = fmt.Errorf("%w: partition %d offset %d has %d value bytes, want %d", errShortRead, r.Partition, r.Offset, len(r.Value), w.size)
			}
			next[r.Partition] = r.Offset + 1
		})
	}
	elapsed := time.Since(start)
	if verr != nil {
		return 0, verr
	}
	if seen != w.records {
		return 0, fmt.Errorf("%w: saw %d records, produced %d", errShortRead, seen, w.records)
	}
	return elapsed, nil
}

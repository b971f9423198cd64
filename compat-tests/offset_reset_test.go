package compat

// A consumer whose position is no longer in the log — retention deleted the
// segments below it, or it asks past the log end — must get
// OFFSET_OUT_OF_RANGE from its fetch, so that it resets the way its
// auto.offset.reset (or the client's equivalent) says, at once. kbroker once
// answered KAFKA_STORAGE_ERROR instead: consumers retried forever, never
// reset, and the broker logged `fetch read failed` at ERROR every 500 ms.
//
// Every case here drives an unmodified client from an offset outside the log
// and checks what it does next against what it does with Apache Kafka, how
// long the reset takes, and that the broker logged nothing at ERROR.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// resetOldRecords are stamped an hour ago, older than resetRetentionMs:
	// retention deletes them, so the log start ends at resetOldRecords.
	resetOldRecords = 10
	// resetNewRecords are stamped now and stay.
	resetNewRecords = 5
	// resetRetentionMs keeps the new records for far longer than a test runs.
	resetRetentionMs = 10 * 60 * 1000
	// resetBound is how long a client may take from its first fetch to
	// having reset. Every client here resets within about a second against
	// Kafka (librdkafka waits fetch.error.backoff.ms, 500 ms, before
	// fetching again); five leaves room for a loaded two-core machine.
	resetBound = 5 * time.Second
	// resetWait is how long a test waits for an outcome before failing; a
	// consumer stuck retrying (the bug) never gets there.
	resetWait = 3 * resetBound
	// resetValuePad makes every record batch larger than half of
	// segment.bytes, so each batch rolls a segment of its own and retention
	// deletes exactly the old records, one segment each.
	resetValuePad = 600
)

// resetTopicConfigs are the configs of a topic that retention trims:
// small segments, retention by time, and deleted files unlinked at the
// next retention pass rather than a minute later.
func resetTopicConfigs(retentionMs int64) map[string]*string {
	return map[string]*string{
		"segment.bytes":        str("1024"),
		"retention.ms":         str(strconv.FormatInt(retentionMs, 10)),
		"file.delete.delay.ms": str("0"),
	}
}

// startResetBroker starts a broker that can hold consumer groups and runs
// retention every 200 ms instead of every five minutes, and fails the test
// if the broker logs at ERROR level (see requireNoBrokerErrors).
func startResetBroker(t *testing.T) *Broker {
	t.Helper()
	b := startGroupBroker(t, "log.retention.check.interval.ms=200")
	requireNoBrokerErrors(t, b)
	return b
}

// requireNoBrokerErrors fails t when it ends if the broker's stderr holds a
// level=ERROR line. A fetch outside the log is the client's business: Kafka
// answers it with an error code and logs nothing, and so must kbroker (the
// bug logged `fetch read failed` every 500 ms per stuck consumer).
func requireNoBrokerErrors(t *testing.T, b *Broker) {
	t.Helper()
	t.Cleanup(func() {
		stderr := b.Stderr()
		// A broker whose log format changed would make the scan below vacuous.
		if !strings.Contains(stderr, "level=INFO") {
			t.Errorf("broker stderr has no level=INFO line, so the level=ERROR scan proves nothing:\n%s", tail(stderr, 2000))
		}
		var bad []string
		for line := range strings.SplitSeq(stderr, "\n") {
			if strings.Contains(line, "level=ERROR") {
				bad = append(bad, line)
			}
		}
		if len(bad) > 0 {
			t.Errorf("broker logged %d lines at ERROR, want none:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
		}
	})
}

// resetKey and resetValue are the content of the record at offset off of a
// reset test topic, so a consumer can tell which record it got.
func resetKey(off int64) string { return "k" + strconv.FormatInt(off, 10) }

func resetValue(topic string, off int64) string {
	return fmt.Sprintf("%s@%d|%s", topic, off, strings.Repeat("v", resetValuePad))
}

// retainedLog is a one-partition topic after retention: records below start
// are gone, start..end-1 are there.
type retainedLog struct {
	topic      string
	start, end int64
}

// produceResetRecords writes resetOldRecords records stamped an hour ago,
// then resetNewRecords stamped now, and returns the log end offset.
func produceResetRecords(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	produceMore(t, b, topic, 0, resetOldRecords, time.Now().Add(-time.Hour))
	produceMore(t, b, topic, resetOldRecords, resetNewRecords, time.Time{})
	return resetOldRecords + resetNewRecords
}

// waitLogStart polls ListStartOffsets until partition 0 of topic starts at
// want, failing at once if retention deleted more than the old records.
func waitLogStart(t *testing.T, adm *kadm.Client, topic string, want int64) {
	t.Helper()
	began := time.Now()
	waitFor(t, 30*time.Second, fmt.Sprintf("retention moves the log start of %s to %d", topic, want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lo, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, ok := lo.Lookup(topic, 0)
		if !ok || o.Err != nil {
			return fmt.Errorf("start offset %+v, found %v", o, ok)
		}
		if o.Offset > want {
			t.Fatalf("log start of %s is %d, past the first record stamped now (%d): retention deleted records it had to keep", topic, o.Offset, want)
		}
		if o.Offset != want {
			return fmt.Errorf("log start %d", o.Offset)
		}
		return nil
	})
	t.Logf("%s: log start moved to %d within %v of the last produce", topic, want, time.Since(began).Round(time.Millisecond))
}

// retainedTopic creates topic, commits offset 0 for each group (before any
// record exists, so before retention could run, as a consumer that stopped
// long ago would have), produces the records and waits until retention has
// deleted the old ones.
func retainedTopic(t *testing.T, b *Broker, adm *kadm.Client, topic string, groups ...string) retainedLog {
	t.Helper()
	createTopic(t, adm, topic, 1, resetTopicConfigs(resetRetentionMs))
	for _, g := range groups {
		commitOffset(t, adm, g, topic, 0)
	}
	end := produceResetRecords(t, b, topic)
	waitLogStart(t, adm, topic, resetOldRecords)
	return retainedLog{topic: topic, start: resetOldRecords, end: end}
}

// commitOffset commits offset for partition 0 of topic in group, with no
// leader epoch (the client then fetches the offset as it is rather than
// validating an epoch first).
func commitOffset(t *testing.T, adm *kadm.Client, group, topic string, offset int64) {
	t.Helper()
	var offs kadm.Offsets
	offs.AddOffset(topic, 0, offset, -1)
	if err := adm.CommitAllOffsets(testCtx(t, 15*time.Second), group, offs); err != nil {
		t.Fatalf("commit %s/0@%d for group %s: %v", topic, offset, group, err)
	}
}

// produceMore writes n records stamped stamp (now if zero) to a reset test
// topic, which must land at offsets from..from+n-1. Each record is a batch
// of its own (one ProduceSync each, uncompressed so it keeps the size
// resetValuePad gives it), and so a segment of its own.
func produceMore(t *testing.T, b *Broker, topic string, from int64, n int, stamp time.Time) {
	t.Helper()
	cl := newClient(t, b, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	for i := from; i < from+int64(n); i++ {
		r := &kgo.Record{Key: []byte(resetKey(i)), Value: []byte(resetValue(topic, i)), Timestamp: stamp}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s record %d: %v", topic, i, err)
		}
		if r.Offset != i {
			t.Fatalf("produce %s record %d: stored at offset %d, want %d", topic, i, r.Offset, i)
		}
	}
}

// checkResetRecord fails unless a record read at off has the content
// produced there.
func checkResetRecord(t *testing.T, topic string, off int64, key, value []byte) {
	t.Helper()
	if string(key) != resetKey(off) || string(value) != resetValue(topic, off) {
		t.Fatalf("%s@%d: key %q value %.40q, want %q %.40q", topic, off, key, value, resetKey(off), resetValue(topic, off))
	}
}

// checkResetTime fails if a reset took longer than resetBound, and reports
// the time either way.
func checkResetTime(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("%s: %v", what, d.Round(100*time.Microsecond))
	if d > resetBound {
		t.Errorf("%s took %v, want at most %v", what, d.Round(time.Millisecond), resetBound)
	}
}

// franzProbe watches a franz-go client from the inside, through its hooks
// and its logger: when it wrote its first Fetch, when it logged that a
// fetch answered OFFSET_OUT_OF_RANGE (so the reset followed the broker's
// answer, not a ListOffsets the client made up front), and when it read the
// first ListOffsets answer after that (the listing it resets to).
type franzProbe struct {
	mu         sync.Mutex
	firstFetch time.Time
	oor        time.Time
	oorLog     string
	listed     time.Time
}

var (
	_ kgo.HookBrokerWrite = (*franzProbe)(nil)
	_ kgo.HookBrokerRead  = (*franzProbe)(nil)
	_ kgo.Logger          = (*franzProbe)(nil)
)

func (p *franzProbe) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key == 1 && err == nil && p.firstFetch.IsZero() {
		p.firstFetch = time.Now()
	}
}

func (p *franzProbe) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key == 2 && err == nil && !p.oor.IsZero() && p.listed.IsZero() {
		p.listed = time.Now()
	}
}

func (p *franzProbe) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (p *franzProbe) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	if !strings.Contains(msg, "OFFSET_OUT_OF_RANGE") {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oor.IsZero() {
		p.oor = time.Now()
		var sb strings.Builder
		sb.WriteString(msg)
		for i := 0; i+1 < len(keyvals); i += 2 {
			fmt.Fprintf(&sb, " %v=%v", keyvals[i], keyvals[i+1])
		}
		p.oorLog = sb.String()
	}
}

// times returns what the probe saw so far.
func (p *franzProbe) times() (firstFetch, oor, listed time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstFetch, p.oor, p.listed
}

// requireOOR fails unless the client saw OFFSET_OUT_OF_RANGE from a fetch.
func (p *franzProbe) requireOOR(t *testing.T) {
	t.Helper()
	first, oor, _ := p.times()
	if first.IsZero() || oor.IsZero() {
		t.Fatalf("franz-go never logged OFFSET_OUT_OF_RANGE from a fetch (first fetch at %v): it did not reset because of the broker's answer", first)
	}
	p.mu.Lock()
	t.Logf("franz-go: %s", p.oorLog)
	p.mu.Unlock()
}

// newProbedClient is newClient with a franzProbe attached.
func newProbedClient(t *testing.T, b *Broker, opts ...kgo.Opt) (*kgo.Client, *franzProbe) {
	t.Helper()
	p := new(franzProbe)
	opts = append(opts, kgo.WithHooks(p), kgo.WithLogger(p), kgo.FetchMaxWait(500*time.Millisecond))
	return newClient(t, b, opts...), p
}

// pollResetRecords polls cl until it has n records, failing on any fetch
// error, and returns them with the time the first one arrived.
func pollResetRecords(t *testing.T, cl *kgo.Client, n int) ([]*kgo.Record, time.Time) {
	t.Helper()
	ctx := testCtx(t, resetWait)
	var got []*kgo.Record
	var first time.Time
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if first.IsZero() {
				first = time.Now()
			}
			got = append(got, r)
		})
	}
	return got, first
}

// checkResetRange fails unless recs are exactly the records from..from+n-1
// of topic, in order.
func checkResetRange(t *testing.T, topic string, recs []*kgo.Record, from int64, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Offset != from+int64(i) {
			t.Fatalf("record %d at offset %d, want %d (records must start at %d)", i, r.Offset, from+int64(i), from)
		}
		checkResetRecord(t, topic, r.Offset, r.Key, r.Value)
	}
}

// TestOffsetResetFranz drives franz-go from offset 0 of a log that starts at
// 10: ConsumeResetOffset decides, as auto.offset.reset does for Kafka's
// clients, after the fetch answered OFFSET_OUT_OF_RANGE.
func TestOffsetResetFranz(t *testing.T) {
	b := startResetBroker(t)
	adm := newAdmin(t, b)
	at0 := func(topic string) kgo.Opt {
		return kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}})
	}

	// AtStart ("earliest"): the first record is the first one retention
	// kept, and every kept record follows.
	t.Run("at_start", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		log := retainedTopic(t, b, adm, "reset-franz-start")
		cl, probe := newProbedClient(t, b, at0(log.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		recs, first := pollResetRecords(t, cl, int(log.end-log.start))
		probe.requireOOR(t)
		checkResetRange(t, log.topic, recs, log.start, int(log.end-log.start))
		firstFetch, _, _ := probe.times()
		checkResetTime(t, "franz-go AtStart: first fetch to the first kept record", first.Sub(firstFetch))
	})

	// AtEnd ("latest"): nothing already in the log, only what is produced
	// after the reset.
	t.Run("at_end", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		log := retainedTopic(t, b, adm, "reset-franz-end")
		cl, probe := newProbedClient(t, b, at0(log.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
		// Polling drives the fetches; nothing may arrive before the client
		// has listed the end offset it resets to.
		var listed time.Time
		waitFor(t, resetWait, "franz-go lists offsets after OFFSET_OUT_OF_RANGE", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			fs := cl.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("fetch %s/%d: %v", tp, p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				t.Fatalf("AtEnd consumer got %s@%d, which was in the log before the reset", r.Topic, r.Offset)
			})
			if _, _, listed = probe.times(); listed.IsZero() {
				return errors.New("no ListOffsets answer after the out-of-range fetch yet")
			}
			return nil
		})
		probe.requireOOR(t)
		firstFetch, _, _ := probe.times()
		checkResetTime(t, "franz-go AtEnd: first fetch to the end offset listed", listed.Sub(firstFetch))
		// The listing answered before these were written, so the client is
		// at log.end: it gets exactly the new records.
		const more = 3
		produceMore(t, b, log.topic, log.end, more, time.Time{})
		recs, _ := pollResetRecords(t, cl, more)
		checkResetRange(t, log.topic, recs, log.end, more)
	})

	// NoResetOffset ("none"): the partition fails with OFFSET_OUT_OF_RANGE,
	// which the application sees in its fetches.
	t.Run("no_reset", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		log := retainedTopic(t, b, adm, "reset-franz-none")
		cl, probe := newProbedClient(t, b, at0(log.topic), kgo.ConsumeResetOffset(kgo.NoResetOffset()))
		ctx := testCtx(t, resetWait)
		var gotErr error
		for gotErr == nil {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("no fetch error before the deadline: the client never learned its offset is out of range")
			}
			fs.EachRecord(func(r *kgo.Record) {
				t.Fatalf("NoResetOffset consumer got %s@%d: it must not reset", r.Topic, r.Offset)
			})
			fs.EachError(func(tp string, p int32, err error) {
				if tp != log.topic || p != 0 || !errors.Is(err, kerr.OffsetOutOfRange) {
					t.Fatalf("fetch %s/%d: %v, want %v", tp, p, err, kerr.OffsetOutOfRange)
				}
				gotErr = err
			})
		}
		firstFetch, _, _ := probe.times()
		checkResetTime(t, "franz-go NoResetOffset: first fetch to OFFSET_OUT_OF_RANGE in PollFetches", time.Since(firstFetch))
	})

	// A group member resuming a commit that retention has since passed:
	// the committed 0 is fetched, answered out of range, and the member
	// resets to the log start.
	t.Run("group_committed_below_start", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		const group = "reset-franz-group"
		log := retainedTopic(t, b, adm, "reset-franz-group", group)
		cl, probe := newProbedClient(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(log.topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		recs, first := pollResetRecords(t, cl, int(log.end-log.start))
		probe.requireOOR(t)
		checkResetRange(t, log.topic, recs, log.start, int(log.end-log.start))
		firstFetch, _, _ := probe.times()
		checkResetTime(t, "franz-go group at committed 0: first fetch to the first kept record", first.Sub(firstFetch))
	})
}

// saramaResetConfig is Sarama's configuration for the reset tests.
func saramaResetConfig(initial int64) *sarama.Config {
	cfg := saramaConfig(sarama.CompressionNone)
	cfg.ClientID = "compat-sarama-reset"
	cfg.Consumer.Offsets.Initial = initial
	return cfg
}

// newSaramaConsumer returns a Sarama consumer closed when the test ends.
func newSaramaConsumer(t *testing.T, b *Broker, cfg *sarama.Config) sarama.Consumer {
	t.Helper()
	cons, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

// saramaReadRange reads n messages from pc, failing on an error or after
// resetWait, and checks they are the records from..from+n-1.
func saramaReadRange(t *testing.T, pc sarama.PartitionConsumer, topic string, from int64, n int) {
	t.Helper()
	timeout := time.After(resetWait)
	for i := 0; i < n; i++ {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				t.Fatalf("partition consumer closed after %d of %d messages", i, n)
			}
			if m.Offset != from+int64(i) {
				t.Fatalf("message %d at offset %d, want %d", i, m.Offset, from+int64(i))
			}
			checkResetRecord(t, topic, m.Offset, m.Key, m.Value)
		case err := <-pc.Errors():
			t.Fatalf("partition consumer: %v", err)
		case <-timeout:
			t.Fatalf("%d of %d messages in %v", i, n, resetWait)
		}
	}
}

// TestOffsetResetSarama covers Sarama. Its PartitionConsumer checks an
// explicit offset against ListOffsets before fetching and refuses one
// outside the log with ErrOffsetOutOfRange, whatever
// Consumer.Offsets.Initial says; its ConsumerGroup catches that error for a
// committed offset and resumes at Consumer.Offsets.Initial
// (Consumer.Group.ResetInvalidOffsets). A partition consumer whose position
// retention deletes while it runs gets OFFSET_OUT_OF_RANGE from its fetch
// and stops with ErrOffsetOutOfRange.
func TestOffsetResetSarama(t *testing.T) {
	b := startResetBroker(t)
	adm := newAdmin(t, b)

	for _, c := range []struct {
		name    string
		initial int64
	}{{"partition_oldest", sarama.OffsetOldest}, {"partition_newest", sarama.OffsetNewest}} {
		t.Run(c.name, func(t *testing.T) {
			requireNoBrokerErrors(t, b)
			log := retainedTopic(t, b, adm, "reset-sarama-"+c.name)
			cfg := saramaResetConfig(c.initial)
			cons := newSaramaConsumer(t, b, cfg)
			for _, off := range []int64{0, log.start - 1, log.end + 1, 1000} {
				began := time.Now()
				pc, err := cons.ConsumePartition(log.topic, 0, off)
				if err == nil {
					pc.Close()
					t.Fatalf("ConsumePartition at %d of a log holding %d..%d: no error, want %v", off, log.start, log.end-1, sarama.ErrOffsetOutOfRange)
				}
				if !errors.Is(err, sarama.ErrOffsetOutOfRange) {
					t.Fatalf("ConsumePartition at %d: %v, want %v", off, err, sarama.ErrOffsetOutOfRange)
				}
				checkResetTime(t, fmt.Sprintf("sarama ConsumePartition at %d refused", off), time.Since(began))
			}
			// What an application does with that error (and what Sarama's
			// group does for it): consume from Consumer.Offsets.Initial.
			pc, err := cons.ConsumePartition(log.topic, 0, cfg.Consumer.Offsets.Initial)
			if err != nil {
				t.Fatalf("ConsumePartition at Consumer.Offsets.Initial: %v", err)
			}
			defer pc.Close()
			if c.initial == sarama.OffsetOldest {
				saramaReadRange(t, pc, log.topic, log.start, int(log.end-log.start))
				return
			}
			const more = 3
			produceMore(t, b, log.topic, log.end, more, time.Time{})
			saramaReadRange(t, pc, log.topic, log.end, more)
		})
	}

	for _, c := range []struct {
		name    string
		initial int64
	}{{"group_oldest", sarama.OffsetOldest}, {"group_newest", sarama.OffsetNewest}} {
		t.Run(c.name, func(t *testing.T) {
			requireNoBrokerErrors(t, b)
			group := "reset-sarama-" + c.name
			log := retainedTopic(t, b, adm, group, group)
			h := startSaramaResetGroup(t, b, group, log.topic, saramaResetConfig(c.initial))
			var setup time.Time
			select {
			case setup = <-h.setup:
			case err := <-h.errs:
				t.Fatalf("sarama group: %v", err)
			case <-time.After(resetWait):
				t.Fatal("sarama group never set up a session")
			}
			var claim saramaClaimStart
			select {
			case claim = <-h.claims:
			case err := <-h.errs:
				t.Fatalf("sarama group: %v", err)
			case <-time.After(resetWait):
				t.Fatal("sarama group never started consuming its claim")
			}
			// InitialOffset is the offset the claim was consumed from:
			// Consumer.Offsets.Initial itself after a reset, the committed
			// offset otherwise.
			if claim.initial != c.initial {
				t.Fatalf("claim consumed from %d, want the reset to Consumer.Offsets.Initial (%d): committed 0 is below the log start %d", claim.initial, c.initial, log.start)
			}
			checkResetTime(t, "sarama group at committed 0: session set up to claim reset", claim.at.Sub(setup))
			from, n := log.start, int(log.end-log.start)
			if c.initial == sarama.OffsetNewest {
				from, n = log.end, 3
				produceMore(t, b, log.topic, log.end, n, time.Time{})
			}
			timeout := time.After(resetWait)
			for i := 0; i < n; i++ {
				select {
				case m := <-h.msgs:
					if m.Offset != from+int64(i) {
						t.Fatalf("message %d at offset %d, want %d", i, m.Offset, from+int64(i))
					}
					checkResetRecord(t, log.topic, m.Offset, m.Key, m.Value)
				case err := <-h.errs:
					t.Fatalf("sarama group: %v", err)
				case <-timeout:
					t.Fatalf("%d of %d messages in %v", i, n, resetWait)
				}
			}
		})
	}

	// The bug as a running consumer meets it: a Sarama consumer stalls near
	// the start of the log (it fetches no further while the application
	// does not read), retention then deletes the records at its position,
	// and its next fetch must answer OFFSET_OUT_OF_RANGE, which Sarama
	// reports and stops on. On KAFKA_STORAGE_ERROR (the bug) it reports
	// that and retries the same fetch forever.
	t.Run("partition_position_deleted", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		topic := "reset-sarama-deleted"
		// No retention yet: the consumer must get going first.
		createTopic(t, adm, topic, 1, resetTopicConfigs(-1))
		end := produceResetRecords(t, b, topic)
		cfg := saramaResetConfig(sarama.OffsetOldest)
		// One message buffered: once one waits there and the next is
		// fetched, the consumer stops fetching until the application reads.
		cfg.ChannelBufferSize = 1
		cons := newSaramaConsumer(t, b, cfg)
		pc, err := cons.ConsumePartition(topic, 0, 0)
		if err != nil {
			t.Fatalf("ConsumePartition at 0: %v", err)
		}
		t.Cleanup(pc.AsyncClose)
		// The application reads the first record, then stops reading:
		// Sarama fetches a record or two more and stalls below offset
		// resetOldRecords, where retention is about to move the log start.
		saramaReadRange(t, pc, topic, 0, 1)
		alterResetRetention(t, adm, topic, resetRetentionMs)
		waitLogStart(t, adm, topic, resetOldRecords)

		resumed := time.Now()
		read := []int64{0}
		timeout := time.After(resetWait)
		for done := false; !done; {
			select {
			case m, ok := <-pc.Messages():
				if !ok {
					t.Fatalf("partition consumer closed after messages %v without reporting an error", read)
				}
				if m.Offset != int64(len(read)) {
					t.Fatalf("message at offset %d after %v", m.Offset, read)
				}
				checkResetRecord(t, topic, m.Offset, m.Key, m.Value)
				read = append(read, m.Offset)
				if len(read) >= resetOldRecords {
					t.Fatalf("read every deleted record %v: the consumer was not stalled below the new log start, so the test proves nothing", read)
				}
			case cerr := <-pc.Errors():
				if !errors.Is(cerr, sarama.ErrOffsetOutOfRange) {
					t.Fatalf("partition consumer error after messages %v: %v, want %v", read, cerr, sarama.ErrOffsetOutOfRange)
				}
				t.Logf("sarama: %v after reading offsets %v", cerr, read)
				done = true
			case <-timeout:
				t.Fatalf("no error %v after retention deleted the consumer's position (read %v)", resetWait, read)
			}
		}
		checkResetTime(t, "sarama fetch below the new log start: reading resumed to ErrOffsetOutOfRange", time.Since(resumed))
		// Sarama closes the partition consumer itself; wait until it is
		// gone, as a new one for the partition is refused until then.
		_ = pc.Close()
		// Recovering as Sarama's group would: from Consumer.Offsets.Initial.
		pc2, err := cons.ConsumePartition(topic, 0, cfg.Consumer.Offsets.Initial)
		if err != nil {
			t.Fatalf("ConsumePartition at Consumer.Offsets.Initial: %v", err)
		}
		defer pc2.Close()
		saramaReadRange(t, pc2, topic, resetOldRecords, int(end-resetOldRecords))
	})
}

// alterResetRetention sets retention.ms of topic.
func alterResetRetention(t *testing.T, adm *kadm.Client, topic string, ms int64) {
	t.Helper()
	resp, err := adm.AlterTopicConfigs(testCtx(t, 15*time.Second),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: str(strconv.FormatInt(ms, 10))}}, topic)
	if err != nil {
		t.Fatalf("alter retention.ms of %s: %v", topic, err)
	}
	if r, err := resp.On(topic, nil); err != nil || r.Err != nil {
		t.Fatalf("alter retention.ms of %s: %v %v (%s)", topic, err, r.Err, r.ErrMessage)
	}
}

// saramaClaimStart is when Sarama's group started consuming a claim, and
// the offset the claim started at.
type saramaClaimStart struct {
	at      time.Time
	initial int64
}

// saramaResetGroup is a Sarama ConsumerGroup's session start, claims,
// messages and errors as channels.
type saramaResetGroup struct {
	setup  chan time.Time
	claims chan saramaClaimStart
	msgs   chan *sarama.ConsumerMessage
	errs   chan error
}

func (h *saramaResetGroup) Setup(sarama.ConsumerGroupSession) error {
	select {
	case h.setup <- time.Now():
	default:
	}
	return nil
}

func (h *saramaResetGroup) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaResetGroup) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	select {
	case h.claims <- saramaClaimStart{time.Now(), claim.InitialOffset()}:
	default:
	}
	for m := range claim.Messages() {
		select {
		case h.msgs <- m:
		case <-sess.Context().Done():
			return nil
		}
	}
	return nil
}

// startSaramaResetGroup runs a Sarama ConsumerGroup on topic until the test
// ends.
func startSaramaResetGroup(t *testing.T, b *Broker, group, topic string, cfg *sarama.Config) *saramaResetGroup {
	t.Helper()
	h := &saramaResetGroup{
		setup:  make(chan time.Time, 1),
		claims: make(chan saramaClaimStart, 1),
		msgs:   make(chan *sarama.ConsumerMessage, 64),
		errs:   make(chan error, 16),
	}
	cg, err := sarama.NewConsumerGroup([]string{b.Addr()}, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	report := func(err error) {
		select {
		case h.errs <- err:
		default:
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				report(fmt.Errorf("Consume: %w", err))
				return
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			report(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := cg.Close(); err != nil {
			t.Errorf("close sarama consumer group: %v", err)
		}
	})
	return h
}

// timedLine is a line a process printed and when the test read it.
type timedLine struct {
	at   time.Time
	text string
}

// kcatRun is a running kcat whose output lines are collected with the time
// each arrived (kcat runs with -u, so lines come as kcat prints them).
type kcatRun struct {
	start  time.Time
	exited chan struct{}

	mu             sync.Mutex
	stdout, stderr []timedLine
	err            error
}

// startKcat starts kcat with args; it is killed when the test ends, and its
// stderr is logged if the test failed.
func startKcat(t *testing.T, kcat string, args ...string) *kcatRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, kcat, args...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &kcatRun{exited: make(chan struct{})}
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start kcat: %v", err)
	}
	var readers sync.WaitGroup
	collect := func(pipe io.Reader, into *[]timedLine) {
		defer readers.Done()
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			r.mu.Lock()
			*into = append(*into, timedLine{time.Now(), sc.Text()})
			r.mu.Unlock()
		}
	}
	readers.Add(2)
	go collect(outPipe, &r.stdout)
	go collect(errPipe, &r.stderr)
	go func() {
		readers.Wait()
		err := cmd.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.exited
		if t.Failed() {
			t.Logf("kcat %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.text(r.out()), r.text(r.errLines()))
		}
	})
	return r
}

func (r *kcatRun) out() []timedLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]timedLine(nil), r.stdout...)
}

func (r *kcatRun) errLines() []timedLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]timedLine(nil), r.stderr...)
}

func (r *kcatRun) text(lines []timedLine) string {
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "+%v %s\n", l.at.Sub(r.start).Round(time.Millisecond), l.text)
	}
	return sb.String()
}

// wait waits up to d for kcat to exit and returns its exit error, failing
// the test if it is still running.
func (r *kcatRun) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.exited:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	case <-time.After(d):
		t.Fatalf("kcat still running after %v", d)
		return nil
	}
}

// firstErrLine returns the first stderr line containing s.
func (r *kcatRun) firstErrLine(s string) (timedLine, bool) {
	for _, l := range r.errLines() {
		if strings.Contains(l.text, s) {
			return l, true
		}
	}
	return timedLine{}, false
}

// checkKcatRecords fails unless kcat printed (as `%o %k`) exactly the
// records from..end-1.
func checkKcatRecords(t *testing.T, r *kcatRun, from, end int64) {
	t.Helper()
	out := r.out()
	var got, want []string
	for _, l := range out {
		got = append(got, l.text)
	}
	for o := from; o < end; o++ {
		want = append(want, fmt.Sprintf("%d %s", o, resetKey(o)))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("kcat printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// kcatOORMessage is how librdkafka names OFFSET_OUT_OF_RANGE in its logs and
// errors ("Broker: Offset out of range").
const kcatOORMessage = "Offset out of range"

// TestOffsetResetKcat covers librdkafka through kcat: auto.offset.reset
// earliest resets an explicit or committed offset below the log start to
// the log start; error makes kcat report the out-of-range offset and exit,
// below the log start and past its end.
func TestOffsetResetKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	b := startResetBroker(t)
	adm := newAdmin(t, b)
	common := []string{"-b", b.Addr(), "-X", "broker.address.family=v4", "-u"}
	consume := func(topic string, args ...string) []string {
		return append(append(append([]string(nil), common...), "-C", "-t", topic, "-p", "0", "-f", `%o %k\n`), args...)
	}

	// earliest, from -o 0: librdkafka logs the reset ("offset reset (at
	// offset 0, broker 1) to … BEGINNING …: … Offset out of range") and
	// prints every kept record; -e exits at the end.
	t.Run("earliest_below_start", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		log := retainedTopic(t, b, adm, "reset-kcat-earliest")
		r := startKcat(t, kcat, consume(log.topic, "-o", "0", "-e", "-X", "auto.offset.reset=earliest")...)
		if err := r.wait(t, resetWait); err != nil {
			t.Fatalf("kcat: %v", err)
		}
		if _, ok := r.firstErrLine(kcatOORMessage); !ok {
			t.Fatalf("kcat did not log a reset after %q", kcatOORMessage)
		}
		checkKcatRecords(t, r, log.start, log.end)
		checkResetTime(t, "kcat earliest from 0: start to the first kept record", r.out()[0].at.Sub(r.start))
	})

	// error, from -o 0: kcat reports the partition error and exits 1,
	// printing nothing.
	t.Run("error_below_start", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		log := retainedTopic(t, b, adm, "reset-kcat-error")
		kcatReportsOOR(t, startKcat(t, kcat, consume(log.topic, "-o", "0", "-X", "auto.offset.reset=error")...))
	})

	// The bug report: five records, -o 1000, auto.offset.reset=error. With
	// KAFKA_STORAGE_ERROR kcat retried silently forever.
	t.Run("error_past_end", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		const topic = "reset-kcat-past-end"
		createTopic(t, adm, topic, 1, nil)
		produceMore(t, b, topic, 0, 5, time.Time{})
		kcatReportsOOR(t, startKcat(t, kcat, consume(topic, "-o", "1000", "-X", "auto.offset.reset=error")...))
	})

	// Past the end with earliest: librdkafka resets to the log start and
	// reads the five records.
	t.Run("earliest_past_end", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		const topic = "reset-kcat-past-end-earliest"
		createTopic(t, adm, topic, 1, nil)
		produceMore(t, b, topic, 0, 5, time.Time{})
		r := startKcat(t, kcat, consume(topic, "-o", "1000", "-e", "-X", "auto.offset.reset=earliest")...)
		if err := r.wait(t, resetWait); err != nil {
			t.Fatalf("kcat: %v", err)
		}
		if _, ok := r.firstErrLine(kcatOORMessage); !ok {
			t.Fatalf("kcat did not log a reset after %q", kcatOORMessage)
		}
		checkKcatRecords(t, r, 0, 5)
		checkResetTime(t, "kcat earliest from 1000: start to the first record", r.out()[0].at.Sub(r.start))
	})

	// A librdkafka group member (`kcat -G`, no -o, so the committed offset
	// counts) whose commit retention has passed resets to the log start.
	t.Run("group_committed_below_start", func(t *testing.T) {
		requireNoBrokerErrors(t, b)
		const group = "reset-kcat-group"
		log := retainedTopic(t, b, adm, "reset-kcat-group", group)
		args := append(append([]string(nil), common...), "-X", "auto.offset.reset=earliest",
			"-X", "enable.auto.commit=false", "-G", group, "-f", `%o %k\n`, log.topic)
		r := startKcat(t, kcat, args...)
		n := int(log.end - log.start)
		waitFor(t, resetWait, "kcat -G prints every kept record", func() error {
			if got := len(r.out()); got < n {
				return fmt.Errorf("%d of %d records", got, n)
			}
			return nil
		})
		checkKcatRecords(t, r, log.start, log.end)
		if _, ok := r.firstErrLine(kcatOORMessage); !ok {
			t.Fatalf("kcat -G did not log a reset after %q", kcatOORMessage)
		}
		// The member fetches once it is assigned the partition; kcat logs
		// the assignment.
		assigned, ok := r.firstErrLine("assigned:")
		if !ok {
			t.Fatal("kcat -G did not log its assignment")
		}
		checkResetTime(t, "kcat -G at committed 0: assignment to the first kept record", r.out()[0].at.Sub(assigned.at))
	})
}

// kcatReportsOOR checks a kcat run with auto.offset.reset=error from an
// offset outside the log: it prints no record, reports the offset out of
// range on stderr promptly, and exits with an error.
func kcatReportsOOR(t *testing.T, r *kcatRun) {
	t.Helper()
	err := r.wait(t, resetWait)
	if err == nil {
		t.Fatal("kcat exited 0, want an error exit for an offset out of range")
	}
	if out := r.out(); len(out) > 0 {
		t.Fatalf("kcat printed records %q, want none", out[0].text)
	}
	l, ok := r.firstErrLine(kcatOORMessage)
	if !ok {
		t.Fatalf("kcat (%v) did not report %q", err, kcatOORMessage)
	}
	t.Logf("kcat (%v): %s", err, l.text)
	checkResetTime(t, "kcat auto.offset.reset=error: start to the reported error", l.at.Sub(r.start))
}

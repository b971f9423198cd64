package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newClient returns a franz-go client seeded with the broker's current
// address; it is closed when the test ends. Build a new one after Restart.
func newClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(b.Addr()),
		kgo.ClientID("compat-" + t.Name()),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(15 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("new franz-go client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// newAdmin wraps a fresh client in kadm.
func newAdmin(t *testing.T, b *Broker) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t, b))
}

// createTopic creates a topic (replication factor 1) and fails the test on
// any error, including a per-topic error code.
func createTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) kadm.CreateTopicResponse {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Err != nil {
		t.Fatalf("create topic %s: %v (%s)", topic, resp.Err, resp.ErrMessage)
	}
	waitTopicReady(t, adm, topic, int(partitions))
	return resp
}

// waitTopicReady polls Metadata until every partition has a leader.
func waitTopicReady(t *testing.T, adm *kadm.Client, topic string, partitions int) {
	t.Helper()
	waitFor(t, 15*time.Second, "topic "+topic+" ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td, ok := md.Topics[topic]
		if !ok {
			return fmt.Errorf("topic missing from metadata")
		}
		if td.Err != nil {
			return td.Err
		}
		if len(td.Partitions) != partitions {
			return fmt.Errorf("%d partitions, want %d", len(td.Partitions), partitions)
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d err %v", p.Partition, p.Leader, p.Err)
			}
		}
		return nil
	})
}

// str is a helper for config maps.
func str(s string) *string { return &s }

// consumeRange reads every partition in want from offset 0 up to (not
// including) the given end offset and returns the records per partition. It
// fails if any partition yields a record at or past its end, or if the range
// is not complete before the deadline.
func consumeRange(t *testing.T, b *Broker, topic string, want map[int32]int64, opts ...kgo.Opt) map[int32][]*kgo.Record {
	t.Helper()
	parts := make(map[int32]kgo.Offset, len(want))
	var total int64
	for p, end := range want {
		parts[p] = kgo.NewOffset().At(0)
		total += end
	}
	got := make(map[int32][]*kgo.Record, len(want))
	if total == 0 {
		return got
	}
	base := []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	cl := newClient(t, b, append(base, opts...)...)
	ctx := testCtx(t, 90*time.Second)
	var n int64
	for n < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: got %d of %d records before deadline", topic, n, total)
		}
		var fatal error
		fs.EachError(func(tp string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			fatal = fmt.Errorf("fetch %s/%d: %w", tp, p, err)
		})
		if fatal != nil {
			t.Fatal(fatal)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; !ok || r.Offset >= end {
				t.Errorf("unexpected record %s/%d@%d (end %d)", r.Topic, r.Partition, r.Offset, want[r.Partition])
				return
			}
			got[r.Partition] = append(got[r.Partition], r)
			n++
		})
		if t.Failed() {
			t.FailNow()
		}
	}
	return got
}

// endOffsets lists the end offset of each partition of topic.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets %s: %v", topic, err)
	}
	out := make(map[int32]int64)
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Errorf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// healthProbe is the "is the broker still healthy" check run after each bad
// input: a new client produces a few records to a one-partition topic and
// reads back everything the probe ever wrote, so earlier data must still be
// intact and in order.
type healthProbe struct {
	topic  string
	values []string
}

func newHealthProbe(t *testing.T, b *Broker, topic string) *healthProbe {
	t.Helper()
	createTopic(t, newAdmin(t, b), topic, 1, nil)
	h := &healthProbe{topic: topic}
	h.check(t, b, "initial")
	return h
}

func (h *healthProbe) check(t *testing.T, b *Broker, label string) {
	t.Helper()
	cl := newClient(t, b, kgo.DefaultProduceTopic(h.topic))
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < 3; i++ {
		v := fmt.Sprintf("%s-%d-%d", label, len(h.values), i)
		r := &kgo.Record{Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("health(%s): produce after bad input failed: %v", label, err)
		}
		if r.Offset != int64(len(h.values)) {
			t.Fatalf("health(%s): produced at offset %d, want %d", label, r.Offset, len(h.values))
		}
		h.values = append(h.values, v)
	}
	cl.Close()
	recs := consumeRange(t, b, h.topic, map[int32]int64{0: int64(len(h.values))})[0]
	got := make([]string, len(recs))
	for i, r := range recs {
		got[i] = string(r.Value)
		if r.Offset != int64(i) {
			t.Fatalf("health(%s): record %d has offset %d", label, i, r.Offset)
		}
	}
	if !slices.Equal(got, h.values) {
		t.Fatalf("health(%s): log content changed:\n got %q\nwant %q", label, got, h.values)
	}
}

// metadataTopics issues a raw Metadata request (null topics = all topics).
func metadataTopics(t *testing.T, cl *kgo.Client, topics []string) *kmsg.MetadataResponse {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, tp := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp)
			req.Topics = append(req.Topics, rt)
		}
	}
	ctx := testCtx(t, 15*time.Second)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return resp
}

// topicNames lists the topic names in a metadata response.
func topicNames(resp *kmsg.MetadataResponse) []string {
	var out []string
	for _, tp := range resp.Topics {
		if tp.Topic != nil {
			out = append(out, *tp.Topic)
		}
	}
	slices.Sort(out)
	return out
}

// errCode renders a Kafka error code for messages.
func errCode(code int16) string {
	if code == 0 {
		return "0 (none)"
	}
	return fmt.Sprintf("%d (%v)", code, kerr.ErrorForCode(code))
}

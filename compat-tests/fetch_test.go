package compat

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetch covers long-polling, fetches that start inside a batch and
// LogAppendTime topics.
func TestFetch(t *testing.T) {
	b := StartBroker(t)
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)
	versions := apiVersionsMap(t, b)

	t.Run("long_poll", func(t *testing.T) {
		created := createTopic(t, adm, "poll", 1, nil)

		// Nothing arrives: the broker holds the request for ~max_wait.
		start := time.Now()
		resp := rawFetch(t, cl, "poll", created.ID, 0, 700)
		if el := time.Since(start); el < 500*time.Millisecond || el > 5*time.Second {
			t.Errorf("empty long-poll with max_wait=700ms returned after %v", el)
		}
		if p := fetchPartition(t, resp); p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
			t.Errorf("empty long-poll: error %s, %d bytes of records", errCode(p.ErrorCode), len(p.RecordBatches))
		}

		// A record produced while the fetch waits wakes it well before
		// max_wait (10 s).
		type result struct {
			resp *kmsg.FetchResponse
			at   time.Time
		}
		done := make(chan result, 1)
		start = time.Now()
		go func() {
			r := rawFetch(t, cl, "poll", created.ID, 0, 10_000)
			done <- result{r, time.Now()}
		}()
		// Stimulus, not synchronisation: give the fetch time to park.
		timer := time.NewTimer(300 * time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("long-poll returned after %v before anything was produced: %+v", r.at.Sub(start), r.resp)
		case <-timer.C:
		}
		p := newClient(t, b, kgo.DefaultProduceTopic("poll"))
		producedAt := time.Now()
		if err := p.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		select {
		case r := <-done:
			if el := r.at.Sub(producedAt); el > 3*time.Second {
				t.Errorf("long-poll answered %v after the produce; want promptly", el)
			}
			batches := parseBatches(t, fetchPartition(t, r.resp).RecordBatches)
			if len(batches) != 1 || batches[0].NumRecords != 1 {
				t.Fatalf("woken fetch returned %d batches", len(batches))
			}
		case <-time.After(9 * time.Second):
			t.Fatalf("long-poll not woken by a produce within 9s (max_wait 10s)")
		}
	})

	t.Run("fetch_inside_batch", func(t *testing.T) {
		created := createTopic(t, adm, "batchy", 1, nil)
		ts := time.Now().UnixMilli()
		res := rawProduce(t, b, versions, "batchy", created.ID, map[int32][]byte{0: buildBatch(ts, textRecords("b0", 10))})
		if res[0].ErrorCode != 0 || res[0].BaseOffset != 0 {
			t.Fatalf("produce batch: %s base %d", errCode(res[0].ErrorCode), res[0].BaseOffset)
		}
		if res[0].LogAppendTime != -1 {
			t.Errorf("CreateTime topic: produce LogAppendTime %d, want -1", res[0].LogAppendTime)
		}
		res = rawProduce(t, b, versions, "batchy", created.ID, map[int32][]byte{0: buildBatch(ts, textRecords("b1", 5))})
		if res[0].ErrorCode != 0 || res[0].BaseOffset != 10 {
			t.Fatalf("produce second batch: %s base %d, want base 10", errCode(res[0].ErrorCode), res[0].BaseOffset)
		}

		// The broker returns whole batches: asking for 5 yields the batch
		// starting at 0; asking for 12 yields the one starting at 10.
		for _, tc := range []struct{ at, first int64 }{{5, 0}, {12, 10}} {
			bs := parseBatches(t, fetchPartition(t, rawFetch(t, cl, "batchy", created.ID, tc.at, 500)).RecordBatches)
			if len(bs) == 0 || bs[0].FirstOffset != tc.first {
				t.Errorf("fetch at %d: first batch %+v, want the whole batch starting at %d", tc.at, firstBatch(bs), tc.first)
			}
		}

		// A real consumer starting mid-batch sees exactly offsets 5..14.
		c := newClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"batchy": {0: kgo.NewOffset().At(5)}}))
		var got []*kgo.Record
		ctx := testCtx(t, 20*time.Second)
		for len(got) < 10 && ctx.Err() == nil {
			c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
		}
		if len(got) != 10 {
			t.Fatalf("consumed %d records from offset 5, want 10", len(got))
		}
		for i, r := range got {
			off := int64(5 + i)
			want := fmt.Sprintf("b0-v%d", off)
			if off >= 10 {
				want = fmt.Sprintf("b1-v%d", off-10)
			}
			if r.Offset != off || string(r.Value) != want {
				t.Errorf("record %d: offset %d value %q, want %d %q", i, r.Offset, r.Value, off, want)
			}
		}
	})

	t.Run("log_append_time", func(t *testing.T) {
		created := createTopic(t, adm, "lat", 2, map[string]*string{"message.timestamp.type": str("LogAppendTime")})
		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		before := time.Now().Add(-time.Second)
		p := newClient(t, b, kgo.DefaultProduceTopic("lat"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for i := 0; i < 5; i++ {
			r := &kgo.Record{Partition: 0, Value: []byte(fmt.Sprint("lat", i)), Timestamp: old}
			if err := p.ProduceSync(testCtx(t, 10*time.Second), r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		res := rawProduce(t, b, versions, "lat", created.ID, map[int32][]byte{1: buildBatch(old.UnixMilli(), textRecords("raw", 3))})
		after := time.Now().Add(time.Second)
		if res[1].ErrorCode != 0 {
			t.Fatalf("raw produce: %s", errCode(res[1].ErrorCode))
		}
		if lat := time.UnixMilli(res[1].LogAppendTime); lat.Before(before) || lat.After(after) {
			t.Errorf("produce response LogAppendTime %d, want broker time in [%v, %v]", res[1].LogAppendTime, before, after)
		}
		recs := consumeRange(t, b, "lat", map[int32]int64{0: 5, 1: 3})
		for p, rs := range recs {
			for _, r := range rs {
				if r.Timestamp.Before(before) || r.Timestamp.After(after) {
					t.Errorf("lat/%d@%d timestamp %v, want the broker's append time (not %v)", p, r.Offset, r.Timestamp, old)
				}
				if r.Attrs.TimestampType() != 1 {
					t.Errorf("lat/%d@%d timestamp type %d, want 1 (LogAppendTime)", p, r.Offset, r.Attrs.TimestampType())
				}
			}
		}
	})
}

// rawFetch issues one sessionless Fetch for partition 0 of topic.
func rawFetch(t *testing.T, cl *kgo.Client, topic string, id [16]byte, offset int64, maxWaitMs int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = maxWaitMs
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionID = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rp.CurrentLeaderEpoch = -1
	rp.LastFetchedEpoch = -1
	rp.LogStartOffset = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Errorf("fetch %s@%d: %v", topic, offset, err)
		return kmsg.NewPtrFetchResponse()
	}
	if resp.ErrorCode != 0 {
		t.Errorf("fetch %s@%d: top-level error %s", topic, offset, errCode(resp.ErrorCode))
	}
	return resp
}

func fetchPartition(t *testing.T, resp *kmsg.FetchResponse) kmsg.FetchResponseTopicPartition {
	t.Helper()
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response shape: %+v", resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

// parseBatches splits fetched bytes into record batch headers; a trailing
// partial batch (allowed by the protocol) is ignored.
func parseBatches(t *testing.T, raw []byte) []kmsg.RecordBatch {
	t.Helper()
	var out []kmsg.RecordBatch
	for len(raw) >= 12 {
		n := int(int32(uint32(raw[8])<<24 | uint32(raw[9])<<16 | uint32(raw[10])<<8 | uint32(raw[11])))
		if n < 49 || len(raw) < 12+n {
			break
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw[:12+n]); err != nil {
			t.Fatalf("parse fetched batch: %v", err)
		}
		out = append(out, b)
		raw = raw[12+n:]
	}
	return out
}

func firstBatch(bs []kmsg.RecordBatch) string {
	if len(bs) == 0 {
		return "none"
	}
	return fmt.Sprintf("{first %d, %d records}", bs[0].FirstOffset, bs[0].NumRecords)
}

package compat

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// codecCase names a compression codec for franz-go and its batch attribute.
type codecCase struct {
	name  string
	codec kgo.CompressionCodec
	attr  uint8 // kgo.RecordAttrs.CompressionType()
}

func franzCodecs() []codecCase {
	return []codecCase{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
}

const (
	franzRecords    = 100_000
	franzPartitions = 6
)

// franzRecord is the deterministic content of record i: it lands in
// partition i%6 at offset i/6, with timestamp base+i ms.
func franzRecord(codec string, base time.Time, i int) *kgo.Record {
	return &kgo.Record{
		Key:       []byte(fmt.Sprintf("key-%06d", i)),
		Value:     franzValue(codec, i),
		Partition: int32(i % franzPartitions),
		Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		Headers: []kgo.RecordHeader{
			{Key: "i", Value: []byte(strconv.Itoa(i))},
			{Key: "codec", Value: []byte(codec)},
			{Key: "empty", Value: nil},
		},
	}
}

func franzValue(codec string, i int) []byte {
	// Compressible but unique, ~100 bytes; every 1000th record is larger
	// so batches vary in size.
	v := fmt.Sprintf("value-%s-%d|%s", codec, i, bytes.Repeat([]byte{byte('a' + i%26)}, 64+i%17))
	if i%1000 == 0 {
		v += string(bytes.Repeat([]byte("0123456789"), 500))
	}
	return []byte(v)
}

// TestFranzCodecsRoundTrip produces 100 000 records per codec with an
// idempotent acks=all franz-go producer, reads them all back exactly, checks
// ListOffsets by time/earliest/latest, and deletes the topic.
func TestFranzCodecsRoundTrip(t *testing.T) {
	b := StartBroker(t)
	adm := newAdmin(t, b)
	for _, cc := range franzCodecs() {
		t.Run(cc.name, func(t *testing.T) {
			topic := "franz-" + cc.name
			createTopic(t, adm, topic, franzPartitions, nil)
			base := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)

			produceFranz(t, b, topic, cc, base)
			checkFranzConsume(t, b, adm, topic, cc, base)
			checkFranzListOffsets(t, adm, topic, base)
			deleteAndCheckGone(t, b, adm, topic)
		})
	}
}

func produceFranz(t *testing.T, b *Broker, topic string, cc codecCase, base time.Time) {
	t.Helper()
	cl := newClient(t, b,
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(cc.codec),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	ctx := testCtx(t, 3*time.Minute)
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		firstErr atomic.Value
	)
	for i := 0; i < franzRecords; i++ {
		r := franzRecord(cc.name, base, i)
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err == nil && r.Offset != int64(i/franzPartitions) {
				err = fmt.Errorf("record %d acknowledged at %d/%d, want offset %d", i, r.Partition, r.Offset, i/franzPartitions)
			}
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprint(err))
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d produces failed; first: %v", n, franzRecords, firstErr.Load())
	}
}

func checkFranzConsume(t *testing.T, b *Broker, adm *kadm.Client, topic string, cc codecCase, base time.Time) {
	t.Helper()
	want := make(map[int32]int64)
	for p := 0; p < franzPartitions; p++ {
		want[int32(p)] = int64((franzRecords - p + franzPartitions - 1) / franzPartitions)
	}
	if got := endOffsets(t, adm, topic); !mapsEqual(got, want) {
		t.Fatalf("end offsets %v, want %v", got, want)
	}
	recs := consumeRange(t, b, topic, want)
	bad := 0
	for p, rs := range recs {
		for j, r := range rs {
			if int64(j) != r.Offset {
				t.Fatalf("partition %d: record #%d has offset %d (order/gap/duplicate)", p, j, r.Offset)
			}
			i := int(r.Offset)*franzPartitions + int(p)
			exp := franzRecord(cc.name, base, i)
			if err := sameRecord(r, exp); err != nil {
				bad++
				if bad <= 5 {
					t.Errorf("%d/%d: %v", p, r.Offset, err)
				}
			}
			if got := r.Attrs.CompressionType(); got != cc.attr {
				t.Fatalf("%d/%d: batch codec %d, want %d (%s)", p, r.Offset, got, cc.attr, cc.name)
			}
			if r.Attrs.TimestampType() != 0 {
				t.Fatalf("%d/%d: LogAppendTime on a CreateTime topic", p, r.Offset)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d records differ", bad)
	}
}

// sameRecord compares key, value, headers and timestamp.
func sameRecord(got, want *kgo.Record) error {
	if !bytes.Equal(got.Key, want.Key) {
		return fmt.Errorf("key %q, want %q", got.Key, want.Key)
	}
	if !bytes.Equal(got.Value, want.Value) {
		return fmt.Errorf("value %.40q, want %.40q", got.Value, want.Value)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Errorf("timestamp %v, want %v", got.Timestamp.UnixMilli(), want.Timestamp.UnixMilli())
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for k := range got.Headers {
		g, w := got.Headers[k], want.Headers[k]
		if g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
			return fmt.Errorf("header %d = %q:%q, want %q:%q", k, g.Key, g.Value, w.Key, w.Value)
		}
	}
	return nil
}

func checkFranzListOffsets(t *testing.T, adm *kadm.Client, topic string, base time.Time) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list start offsets: %v", err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("earliest %d: offset %d err %v, want 0", o.Partition, o.Offset, o.Err)
		}
	})
	ends := endOffsets(t, adm, topic)
	// For record index i, partition p's first record at or after base+i ms
	// is index j = the first j >= i with j%6 == p, at offset j/6.
	for _, i := range []int{0, 1, 5, 6, 7, 4242, 50_000, 99_994, 99_999, franzRecords, franzRecords + 1000} {
		lo, err := adm.ListOffsetsAfterMilli(ctx, base.Add(time.Duration(i)*time.Millisecond).UnixMilli(), topic)
		if err != nil {
			t.Fatalf("ListOffsetsAfterMilli(%d): %v", i, err)
		}
		for p := int32(0); p < franzPartitions; p++ {
			o, ok := lo.Lookup(topic, p)
			if !ok {
				t.Fatalf("ListOffsetsAfterMilli(%d): partition %d missing", i, p)
			}
			j := i + (int(p)-i%franzPartitions+franzPartitions)%franzPartitions
			wantOff, wantTS := int64(j/franzPartitions), base.Add(time.Duration(j)*time.Millisecond).UnixMilli()
			if j >= franzRecords {
				wantOff = ends[p] // kadm maps Kafka's -1 "none after" to the end offset
			}
			if o.Err != nil || o.Offset != wantOff {
				t.Errorf("ListOffsetsAfterMilli(base+%d) p%d = %d (err %v), want %d", i, p, o.Offset, o.Err, wantOff)
			}
			if j < franzRecords && o.Timestamp != wantTS {
				t.Errorf("ListOffsetsAfterMilli(base+%d) p%d timestamp %d, want %d", i, p, o.Timestamp, wantTS)
			}
		}
	}
}

// deleteAndCheckGone deletes topic and requires the very next Metadata to
// show it gone.
func deleteAndCheckGone(t *testing.T, b *Broker, adm *kadm.Client, topic string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	resp, err := adm.DeleteTopic(ctx, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("delete topic %s: %v / %v", topic, err, resp.Err)
	}
	cl := newClient(t, b)
	all := metadataTopics(t, cl, nil)
	for _, name := range topicNames(all) {
		if name == topic {
			t.Fatalf("deleted topic %s still listed by Metadata(all)", topic)
		}
	}
	one := metadataTopics(t, cl, []string{topic})
	if len(one.Topics) != 1 || one.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("Metadata(%s) after delete: %+v, want UNKNOWN_TOPIC_OR_PARTITION", topic, one.Topics)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

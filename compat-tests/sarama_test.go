package compat

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaMsg is the deterministic content of message i of a run.
func saramaMsg(topic, run string, i int, base time.Time, partitions int32) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Partition: int32(i) % partitions,
		Key:       sarama.StringEncoder(fmt.Sprintf("%s-key-%d", run, i)),
		Value:     sarama.ByteEncoder(fmt.Appendf(nil, "%s-value-%d-%s", run, i, bytes.Repeat([]byte("s"), i%200))),
		Headers: []sarama.RecordHeader{
			{Key: []byte("run"), Value: []byte(run)},
			{Key: []byte("i"), Value: fmt.Appendf(nil, "%d", i)},
		},
		Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		Metadata:  i,
	}
}

func saramaConfig(codec sarama.CompressionCodec) *sarama.Config {
	cfg := sarama.NewConfig()
	// Kafka 4.0: Sarama negotiates request versions down to what the
	// broker advertises; >= 2.1 is needed for zstd.
	cfg.Version = sarama.V4_0_0_0
	cfg.ClientID = "compat-sarama"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Compression = codec
	cfg.Producer.Flush.Messages = 200
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.Retry.Max = 5
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Net.DialTimeout = 5 * time.Second
	return cfg
}

type saramaSent struct {
	msg       *sarama.ProducerMessage
	partition int32
	offset    int64
}

// TestSarama produces with SyncProducer and AsyncProducer for every codec
// (Sarama's snappy is xerial-framed) and reads it all back with
// PartitionConsumers.
func TestSarama(t *testing.T) {
	b := StartBroker(t)
	adm := newAdmin(t, b)
	codecs := []struct {
		name  string
		codec sarama.CompressionCodec
	}{
		{"none", sarama.CompressionNone},
		{"gzip", sarama.CompressionGZIP},
		{"snappy", sarama.CompressionSnappy},
		{"lz4", sarama.CompressionLZ4},
		{"zstd", sarama.CompressionZSTD},
	}
	const partitions = 3
	for _, cc := range codecs {
		t.Run(cc.name, func(t *testing.T) {
			topic := "sarama-" + cc.name
			createTopic(t, adm, topic, partitions, nil)
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			var sent []saramaSent
			sent = append(sent, saramaSync(t, b, topic, cc.codec, base)...)
			sent = append(sent, saramaAsync(t, b, topic, cc.codec, base)...)
			saramaConsume(t, b, topic, cc.codec, partitions, sent)
		})
	}
}

func saramaSync(t *testing.T, b *Broker, topic string, codec sarama.CompressionCodec, base time.Time) []saramaSent {
	t.Helper()
	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, saramaConfig(codec))
	if err != nil {
		t.Fatalf("sarama sync producer: %v", err)
	}
	defer prod.Close()
	var out []saramaSent
	for i := 0; i < 20; i++ { // one at a time
		m := saramaMsg(topic, "sync1", i, base, 3)
		p, off, err := prod.SendMessage(m)
		if err != nil {
			t.Fatalf("SendMessage %d: %v", i, err)
		}
		out = append(out, saramaSent{m, p, off})
	}
	var batch []*sarama.ProducerMessage
	for i := 0; i < 1500; i++ {
		batch = append(batch, saramaMsg(topic, "syncN", i, base, 3))
	}
	if err := prod.SendMessages(batch); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}
	for _, m := range batch {
		out = append(out, saramaSent{m, m.Partition, m.Offset})
	}
	return out
}

func saramaAsync(t *testing.T, b *Broker, topic string, codec sarama.CompressionCodec, base time.Time) []saramaSent {
	t.Helper()
	prod, err := sarama.NewAsyncProducer([]string{b.Addr()}, saramaConfig(codec))
	if err != nil {
		t.Fatalf("sarama async producer: %v", err)
	}
	const n = 3000
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; i < n; i++ {
			select {
			case prod.Input() <- saramaMsg(topic, "async", i, base, 3):
			case <-stop:
				return
			}
		}
	}()
	closed := false
	defer func() {
		if !closed { // a failure above: unblock the feeder, then close
			close(stop)
			<-fed
			prod.AsyncClose()
		}
	}()
	out := make([]saramaSent, 0, n)
	timeout := time.After(60 * time.Second)
	for len(out) < n {
		select {
		case m := <-prod.Successes():
			out = append(out, saramaSent{m, m.Partition, m.Offset})
		case e := <-prod.Errors():
			t.Fatalf("async produce error: %v", e.Err)
		case <-timeout:
			t.Fatalf("async producer: %d of %d acknowledged in 60s", len(out), n)
		}
	}
	<-fed
	closed = true
	if err := prod.Close(); err != nil {
		t.Fatalf("close async producer: %v", err)
	}
	return out
}

func saramaConsume(t *testing.T, b *Broker, topic string, codec sarama.CompressionCodec, partitions int32, sent []saramaSent) {
	t.Helper()
	want := map[int32]map[int64]*sarama.ProducerMessage{}
	for _, s := range sent {
		if want[s.partition] == nil {
			want[s.partition] = map[int64]*sarama.ProducerMessage{}
		}
		if prev, dup := want[s.partition][s.offset]; dup {
			t.Fatalf("two messages acknowledged at %d/%d: %v and %v", s.partition, s.offset, prev.Key, s.msg.Key)
		}
		want[s.partition][s.offset] = s.msg
	}
	cons, err := sarama.NewConsumer([]string{b.Addr()}, saramaConfig(codec))
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer cons.Close()
	for p := int32(0); p < partitions; p++ {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: %v", p, err)
		}
		expect := int64(len(want[p]))
		timeout := time.After(60 * time.Second)
		for next := int64(0); next < expect; next++ {
			select {
			case m := <-pc.Messages():
				if m.Offset != next {
					t.Fatalf("%s/%d: got offset %d, want %d", topic, p, m.Offset, next)
				}
				w, ok := want[p][m.Offset]
				if !ok {
					t.Fatalf("%s/%d@%d: not an acknowledged offset", topic, p, m.Offset)
				}
				if err := sameSarama(m, w); err != nil {
					t.Fatalf("%s/%d@%d: %v", topic, p, m.Offset, err)
				}
			case e := <-pc.Errors():
				t.Fatalf("partition consumer %d: %v", p, e)
			case <-timeout:
				t.Fatalf("%s/%d: consumed %d of %d", topic, p, next, expect)
			}
		}
		if hw := pc.HighWaterMarkOffset(); hw != expect {
			t.Errorf("%s/%d: high watermark %d, want %d", topic, p, hw, expect)
		}
		pc.Close()
	}
}

func sameSarama(got *sarama.ConsumerMessage, want *sarama.ProducerMessage) error {
	wk, _ := want.Key.Encode()
	wv, _ := want.Value.Encode()
	if !bytes.Equal(got.Key, wk) || !bytes.Equal(got.Value, wv) {
		return fmt.Errorf("key/value %q/%.30q, want %q/%.30q", got.Key, got.Value, wk, wv)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Errorf("timestamp %v, want %v", got.Timestamp, want.Timestamp)
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i, h := range got.Headers {
		if !bytes.Equal(h.Key, want.Headers[i].Key) || !bytes.Equal(h.Value, want.Headers[i].Value) {
			return fmt.Errorf("header %d %q=%q, want %q=%q", i, h.Key, h.Value, want.Headers[i].Key, want.Headers[i].Value)
		}
	}
	return nil
}

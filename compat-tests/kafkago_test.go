package compat

// segmentio/kafka-go against kbroker. kafka-go has two protocol layers, and
// an application uses both, so both are driven here. Seen on the wire
// (kafka-go v0.4.51):
//
//   - Writer, Client and Transport (package protocol) pick, per API, the
//     highest version both sides know: kafka-go's maxima, Produce v8,
//     Metadata v8, ListOffsets v5, CreateTopics v5, DeleteTopics v3.
//   - Conn, the partition Reader and the consumer group send fixed versions
//     or choose from short lists: ApiVersions v0, Metadata v1 (Brokers,
//     Controller) and v6, ListOffsets v1, Fetch v10, Produce v7,
//     CreateTopics v2, DeleteTopics v1, FindCoordinator v0, JoinGroup v2,
//     SyncGroup, Heartbeat and LeaveGroup v0, OffsetFetch v1, OffsetCommit
//     v2.
//
// Apache Kafka 4.x serves every one of those: KIP-896 removed only older
// versions (Produce v0-2, Fetch v0-3, ListOffsets v0, OffsetCommit v0-1,
// OffsetFetch v0, CreateTopics v0-1, DeleteTopics v0) and kept v0 of
// Metadata, FindCoordinator, SyncGroup, Heartbeat and LeaveGroup. So an
// unmodified kafka-go application must work against kbroker as it does
// against Kafka 4.x.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/twmb/franz-go/pkg/kadm"
)

// kafkaGoCodec is a kafka-go Writer compression and the codec attribute the
// broker must store its batches with.
type kafkaGoCodec struct {
	name  string
	codec kafka.Compression
	attr  uint8 // kgo.RecordAttrs.CompressionType()
}

var kafkaGoCodecs = []kafkaGoCodec{
	{"none", compress.None, 0},
	{"gzip", kafka.Gzip, 1},
	{"snappy", kafka.Snappy, 2},
	{"lz4", kafka.Lz4, 3},
	{"zstd", kafka.Zstd, 4},
}

const (
	kafkaGoRecords    = 3000
	kafkaGoPartitions = 4
	// kafkaGoKeys is how many distinct keys the records share, so the
	// balancer places many records of each key.
	kafkaGoKeys = 37
	// kafkaGoWriteChunk is how many messages one WriteMessages call takes.
	kafkaGoWriteChunk = 500
)

// newKafkaGoTransport returns a Transport of its own for one test, so no
// pooled connection outlives the test's broker. kafka-go's Client answers
// Metadata from the Transport's cache, refreshed at a random point within
// MetadataTTL (6s by default); a short TTL lets a deletion show promptly.
func newKafkaGoTransport(t *testing.T) *kafka.Transport {
	t.Helper()
	tr := &kafka.Transport{ClientID: "compat-kafka-go", DialTimeout: 5 * time.Second, MetadataTTL: time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// kafkaGoDialer is the Dialer behind a Reader or a Conn; clientID names the
// connection in the broker's group and request bookkeeping.
func kafkaGoDialer(clientID string) *kafka.Dialer {
	return &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second}
}

// kafkaGoMessage is the deterministic content of message i of a codec run.
// Its key decides the partition (through the Writer's balancer); WriterData
// carries i back to the Completion callback.
func kafkaGoMessage(codec string, base time.Time, i int) kafka.Message {
	return kafka.Message{
		Key:   fmt.Appendf(nil, "key-%02d", i%kafkaGoKeys),
		Value: franzValue(codec, i),
		Headers: []kafka.Header{
			{Key: "i", Value: []byte(strconv.Itoa(i))},
			{Key: "codec", Value: []byte(codec)},
			{Key: "empty", Value: nil},
		},
		Time:       base.Add(time.Duration(i) * time.Millisecond),
		WriterData: i,
	}
}

// kafkaGoAck is where the broker acknowledged one message.
type kafkaGoAck struct {
	partition int
	offset    int64
}

// TestKafkaGoWriterReader produces with a kafka-go Writer (acks=all, keys,
// headers, the murmur2 balancer) in every codec and reads each partition back
// with a kafka-go Reader: every message at the offset the Writer was told,
// unchanged, in write order, and stored in the chosen codec.
func TestKafkaGoWriterReader(t *testing.T) {
	b := StartBroker(t)
	adm := newAdmin(t, b)
	for _, cc := range kafkaGoCodecs {
		t.Run(cc.name, func(t *testing.T) {
			topic := "kafka-go-" + cc.name
			createTopic(t, adm, topic, kafkaGoPartitions, nil)
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)

			acks := writeKafkaGo(t, b, topic, cc, base)
			end := checkKafkaGoPlacement(t, acks)
			if got := endOffsets(t, adm, topic); !mapsEqual(got, end) {
				t.Fatalf("end offsets %v, want what the Writer was acknowledged: %v", got, end)
			}
			for p := range kafkaGoPartitions {
				msgs := readKafkaGoPartition(t, b, topic, p, end[int32(p)])
				checkKafkaGoPartition(t, msgs, acks, cc.name, base, p, end[int32(p)])
			}
			// The codec must really reach the log: a client that falls back
			// to uncompressed batches would pass the round trip above.
			for p, recs := range consumeRange(t, b, topic, end) {
				for _, r := range recs {
					if r.Attrs.CompressionType() != cc.attr {
						t.Fatalf("%s/%d@%d stored with codec %d, want %d (%s)", topic, p, r.Offset, r.Attrs.CompressionType(), cc.attr, cc.name)
					}
				}
			}
		})
	}
}

// writeKafkaGo writes kafkaGoRecords messages through a synchronous Writer
// and returns where each was acknowledged, indexed by message number.
func writeKafkaGo(t *testing.T, b *Broker, topic string, cc kafkaGoCodec, base time.Time) []kafkaGoAck {
	t.Helper()
	var (
		mu   sync.Mutex
		acks = make([]kafkaGoAck, kafkaGoRecords)
		seen = make([]bool, kafkaGoRecords)
		errs []string
	)
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr()),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		Compression:  cc.codec,
		BatchSize:    200,
		BatchTimeout: 5 * time.Millisecond,
		Transport:    newKafkaGoTransport(t),
		Completion: func(msgs []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				i := m.WriterData.(int)
				if err != nil || seen[i] {
					errs = append(errs, fmt.Sprintf("message %d: completed twice or with %v", i, err))
					continue
				}
				seen[i] = true
				acks[i] = kafkaGoAck{m.Partition, m.Offset}
			}
		},
	}
	ctx := testCtx(t, 60*time.Second)
	for start := 0; start < kafkaGoRecords; start += kafkaGoWriteChunk {
		msgs := make([]kafka.Message, 0, kafkaGoWriteChunk)
		for i := start; i < min(start+kafkaGoWriteChunk, kafkaGoRecords); i++ {
			msgs = append(msgs, kafkaGoMessage(cc.name, base, i))
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("kafka-go WriteMessages %d..%d: %v", start, start+len(msgs)-1, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close kafka-go Writer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("Writer completions: %v", errs)
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Fatalf("message %d never completed", i)
	}
	return acks
}

// checkKafkaGoPlacement checks that the acknowledged offsets of each
// partition are exactly 0..n-1 (no two messages at one offset, no gap), that
// the balancer kept every key on one partition and used every partition, and
// returns the end offsets.
func checkKafkaGoPlacement(t *testing.T, acks []kafkaGoAck) map[int32]int64 {
	t.Helper()
	at := make(map[kafkaGoAck]int)
	keyPartition := make(map[int]int)
	end := make(map[int32]int64)
	for i, a := range acks {
		if prev, dup := at[a]; dup {
			t.Fatalf("messages %d and %d both acknowledged at %d/%d", prev, i, a.partition, a.offset)
		}
		at[a] = i
		if p, ok := keyPartition[i%kafkaGoKeys]; ok && p != a.partition {
			t.Fatalf("key %d written to partitions %d and %d: the balancer must keep a key on one partition", i%kafkaGoKeys, p, a.partition)
		}
		keyPartition[i%kafkaGoKeys] = a.partition
		end[int32(a.partition)]++
	}
	if len(end) != kafkaGoPartitions {
		t.Fatalf("the balancer used partitions %v of %d", end, kafkaGoPartitions)
	}
	for a := range at {
		if a.offset < 0 || a.offset >= end[int32(a.partition)] {
			t.Fatalf("offset %d acknowledged on partition %d, which holds %d messages", a.offset, a.partition, end[int32(a.partition)])
		}
	}
	return end
}

// readKafkaGoPartition reads offsets 0..n-1 of one partition with a
// partition Reader (no group) and checks that nothing is left behind them.
func readKafkaGoPartition(t *testing.T, b *Broker, topic string, p int, n int64) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{b.Addr()},
		Topic:     topic,
		Partition: p,
		Dialer:    kafkaGoDialer("compat-kafka-go-reader"),
		// Close waits for the fetch in flight, which long-polls this long
		// once the partition is drained.
		MaxWait:  100 * time.Millisecond,
		MaxBytes: 1 << 20,
	})
	defer r.Close()
	ctx := testCtx(t, 30*time.Second)
	msgs := make([]kafka.Message, 0, n)
	for int64(len(msgs)) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("kafka-go Reader %s/%d: %v after %d of %d messages", topic, p, err, len(msgs), n)
		}
		msgs = append(msgs, m)
	}
	lag, err := r.ReadLag(ctx)
	if err != nil || lag != 0 {
		t.Fatalf("kafka-go Reader %s/%d after %d messages: lag %d (%v), want 0", topic, p, n, lag, err)
	}
	return msgs
}

// checkKafkaGoPartition compares what a Reader returned for partition p
// with what the Writer was acknowledged there: offsets 0..end-1 in order,
// each message unchanged, messages in the order they were written.
func checkKafkaGoPartition(t *testing.T, msgs []kafka.Message, acks []kafkaGoAck, codec string, base time.Time, p int, end int64) {
	t.Helper()
	at := make(map[int64]int, end)
	for i, a := range acks {
		if a.partition == p {
			at[a.offset] = i
		}
	}
	last := -1
	for j, m := range msgs {
		if m.Partition != p || m.Offset != int64(j) {
			t.Fatalf("message #%d of partition %d read as %d/%d (gap, duplicate or wrong partition)", j, p, m.Partition, m.Offset)
		}
		i := at[m.Offset]
		if i <= last {
			t.Fatalf("partition %d: message %d at offset %d follows message %d; write order lost", p, i, m.Offset, last)
		}
		last = i
		if err := sameKafkaGo(m, kafkaGoMessage(codec, base, i)); err != nil {
			t.Fatalf("%d/%d (message %d): %v", p, m.Offset, i, err)
		}
		if m.HighWaterMark != end {
			t.Fatalf("%d/%d: high watermark %d, want %d", p, m.Offset, m.HighWaterMark, end)
		}
	}
}

// sameKafkaGo compares a read message with the written one.
func sameKafkaGo(got, want kafka.Message) error {
	if !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) {
		return fmt.Errorf("key/value %q/%.30q, want %q/%.30q", got.Key, got.Value, want.Key, want.Value)
	}
	if !got.Time.Equal(want.Time) {
		return fmt.Errorf("time %v, want %v", got.Time, want.Time)
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i, h := range got.Headers {
		if h.Key != want.Headers[i].Key || !bytes.Equal(h.Value, want.Headers[i].Value) {
			return fmt.Errorf("header %d %q=%q, want %q=%q", i, h.Key, h.Value, want.Headers[i].Key, want.Headers[i].Value)
		}
	}
	return nil
}

// kafkaGoMember is one kafka-go Reader in a consumer group. Its client ID
// tells it apart in DescribeGroups.
type kafkaGoMember struct {
	clientID string
	r        *kafka.Reader
}

// startKafkaGoMember starts a group Reader with synchronous CommitMessages.
// Heartbeats every 200ms let it notice a rebalance quickly; the Reader is
// closed (leaving the group) when the test ends if not before.
func startKafkaGoMember(t *testing.T, b *Broker, group, topic, clientID string) *kafkaGoMember {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{b.Addr()},
		GroupID:           group,
		Topic:             topic,
		Dialer:            kafkaGoDialer(clientID),
		MaxWait:           250 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
	})
	m := &kafkaGoMember{clientID: clientID, r: r}
	t.Cleanup(m.close)
	return m
}

// close leaves the group; kafka-go's Close is idempotent.
func (m *kafkaGoMember) close() { _ = m.r.Close() }

// consume fetches until the member has delivered every offset in
// [from[p], to[p]) of each partition in to, in order and nothing else, and
// commits each message below commitTo[p] (every message when commitTo is
// nil). Starting exactly at from[p] is the check that the group resumed at
// its committed offset.
func (m *kafkaGoMember) consume(ctx context.Context, from, to, commitTo map[int32]int64) error {
	next := maps64(from)
	for p := range to {
		if _, ok := next[p]; !ok {
			return fmt.Errorf("%s: no start offset for partition %d", m.clientID, p)
		}
	}
	done := func() bool {
		for p, end := range to {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		msg, err := m.r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("%s: FetchMessage with %v to go until %v: %w", m.clientID, next, to, err)
		}
		p := int32(msg.Partition)
		end, owned := to[p]
		switch {
		case !owned:
			return fmt.Errorf("%s: fetched %d/%d from a partition it does not own", m.clientID, p, msg.Offset)
		case msg.Offset != next[p] || msg.Offset >= end:
			return fmt.Errorf("%s: fetched %d/%d, want offset %d (below %d): skipped, redelivered or past the end", m.clientID, p, msg.Offset, next[p], end)
		case string(msg.Value) != seqValue(p, msg.Offset):
			return fmt.Errorf("%s: %d/%d holds %q, want %q", m.clientID, p, msg.Offset, msg.Value, seqValue(p, msg.Offset))
		}
		next[p]++
		if commitTo == nil || msg.Offset < commitTo[p] {
			if err := m.r.CommitMessages(ctx, msg); err != nil {
				return fmt.Errorf("%s: CommitMessages %d/%d: %w", m.clientID, p, msg.Offset, err)
			}
		}
	}
	return nil
}

// kafkaGoShares waits until DescribeGroups shows group Stable with exactly
// the members clientIDs, each owning at least one partition of topic, their
// assignments disjoint and covering all parts; it returns each member's
// partitions.
func kafkaGoShares(t *testing.T, adm *kadm.Client, group, topic string, parts int32, clientIDs ...string) map[string][]int32 {
	t.Helper()
	var shares map[string][]int32
	waitFor(t, 30*time.Second, fmt.Sprintf("group %s stable with members %v sharing %s", group, clientIDs, topic), func() error {
		d := describeGroup(t, adm, group)
		if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || len(d.Members) != len(clientIDs) {
			return fmt.Errorf("state %q type %q, %d members, err %v", d.State, d.ProtocolType, len(d.Members), d.Err)
		}
		shares = make(map[string][]int32)
		owner := make(map[int32]string)
		for _, m := range d.Members {
			if !slices.Contains(clientIDs, m.ClientID) {
				return fmt.Errorf("member %s has client ID %q, want one of %v", m.MemberID, m.ClientID, clientIDs)
			}
			c, ok := m.Assigned.AsConsumer()
			if !ok {
				return fmt.Errorf("member %s: assignment is not a consumer assignment", m.ClientID)
			}
			for _, at := range c.Topics {
				if at.Topic != topic {
					return fmt.Errorf("member %s assigned topic %q", m.ClientID, at.Topic)
				}
				for _, p := range at.Partitions {
					if prev, dup := owner[p]; dup {
						return fmt.Errorf("partition %d assigned to %s and %s", p, prev, m.ClientID)
					}
					owner[p] = m.ClientID
					shares[m.ClientID] = append(shares[m.ClientID], p)
				}
			}
		}
		if len(owner) != int(parts) || len(shares) != len(clientIDs) {
			return fmt.Errorf("assignment %v, want all %d partitions shared by %v", shares, parts, clientIDs)
		}
		return nil
	})
	return shares
}

// only restricts offsets to the partitions ps.
func only(offsets map[int32]int64, ps []int32) map[int32]int64 {
	out := make(map[int32]int64, len(ps))
	for _, p := range ps {
		out[p] = offsets[p]
	}
	return out
}

// TestKafkaGoConsumerGroup runs kafka-go's consumer group (Reader with a
// GroupID): two Readers share the partitions and commit what they fetched;
// after they leave, a new Reader resumes exactly at the committed offsets,
// commits only part of what it fetched and leaves; the next one gets
// exactly the uncommitted rest, nothing lost and nothing else again.
func TestKafkaGoConsumerGroup(t *testing.T) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	const topic, group, parts = "kafka-go-group", "kafka-go-group", 4
	createTopic(t, adm, topic, parts, nil)
	zero := map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}

	// Records are produced once both members own their share, so none is
	// read under the first member's one-member generation.
	a := startKafkaGoMember(t, b, group, topic, "compat-kafka-go-a")
	bm := startKafkaGoMember(t, b, group, topic, "compat-kafka-go-b")
	shares := kafkaGoShares(t, adm, group, topic, parts, a.clientID, bm.clientID)
	if d := describeGroup(t, adm, group); d.Protocol != "range" {
		t.Errorf("group protocol %q, want kafka-go's first balancer, range", d.Protocol)
	}
	end1 := produceSeq(t, b, topic, parts, 4*150)

	ctx := testCtx(t, 60*time.Second)
	errs := make(chan error, 2)
	for _, m := range []*kafkaGoMember{a, bm} {
		go func() {
			errs <- m.consume(ctx, only(zero, shares[m.clientID]), only(end1, shares[m.clientID]), nil)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fetchCommitted(t, adm, group, topic, parts); !mapsEqual(got, end1) {
		t.Fatalf("committed %v after both members committed everything, want %v", got, end1)
	}
	a.close()
	bm.close()

	// A restarted member resumes at the committed offsets and commits only
	// the first half of what it fetches.
	produceTail(t, b, topic, end1, 100)
	end2, half := make(map[int32]int64), make(map[int32]int64)
	for p, e := range end1 {
		end2[p], half[p] = e+100, e+50
	}
	c := startKafkaGoMember(t, b, group, topic, "compat-kafka-go-c")
	checkLiveGroup(t, adm, group, topic, c.clientID, parts)
	if err := c.consume(ctx, end1, end2, half); err != nil {
		t.Fatal(err)
	}
	c.close()
	if got := fetchCommitted(t, adm, group, topic, parts); !mapsEqual(got, half) {
		t.Fatalf("committed %v after committing half, want %v", got, half)
	}

	// The next member gets exactly what was fetched but not committed.
	d := startKafkaGoMember(t, b, group, topic, "compat-kafka-go-d")
	checkLiveGroup(t, adm, group, topic, d.clientID, parts)
	if err := d.consume(ctx, half, end2, nil); err != nil {
		t.Fatal(err)
	}
	d.close()
	checkCommittedGroup(t, adm, group, topic, end2)
}

// newKafkaGoClient returns a kafka-go Client for the broker.
func newKafkaGoClient(t *testing.T, b *Broker) *kafka.Client {
	t.Helper()
	return &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 15 * time.Second, Transport: newKafkaGoTransport(t)}
}

// brokerPort is the port of the broker's advertised address.
func brokerPort(t *testing.T, b *Broker) int {
	t.Helper()
	_, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatalf("broker address %q: %v", b.Addr(), err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("broker port %q: %v", port, err)
	}
	return n
}

// kafkaGoAdminStarts is how many fresh brokers TestKafkaGoAdminRightAfterStart
// tries: its window lasts a few milliseconds and is hit on about every other
// start.
const kafkaGoAdminStarts = 10

// TestKafkaGoAdminRightAfterStart creates a topic with kafka-go's Client as
// soon as a fresh broker serves, as an application started by a compose
// health check does. kafka-go sends CreateTopics to the controller named in
// its Transport's first Metadata answer and retries neither a controller it
// does not know (BROKER_NOT_AVAILABLE, for controller ID -1) nor
// NOT_CONTROLLER. A Kafka 4.x broker enables its listeners only once it is
// unfenced, names a live broker as controller in Metadata and forwards
// CreateTopics to the active controller, so this always works there.
func TestKafkaGoAdminRightAfterStart(t *testing.T) {
	for i := range kafkaGoAdminStarts {
		t.Run(fmt.Sprintf("start_%d", i), func(t *testing.T) {
			b := StartBroker(t)
			cl := newKafkaGoClient(t, b)
			const topic = "kafka-go-first"
			resp, err := cl.CreateTopics(testCtx(t, 15*time.Second), &kafka.CreateTopicsRequest{
				Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
			})
			if err != nil || resp.Errors[topic] != nil {
				t.Fatalf("kafka-go CreateTopics right after the broker served: %v / %v", err, resp)
			}
		})
	}
}

// TestKafkaGoClientAdmin drives kafka-go's Client admin calls: CreateTopics
// (with a config, and again for TOPIC_ALREADY_EXISTS), Metadata, ListOffsets
// first/last after a Writer filled the partitions, DeleteTopics (and again
// for UNKNOWN_TOPIC_OR_PARTITION).
func TestKafkaGoClientAdmin(t *testing.T) {
	b := StartBroker(t)
	// franz-go retries until the broker accepts controller requests; only
	// then is kafka-go's Client built (TestKafkaGoAdminRightAfterStart
	// covers the moments before).
	createTopic(t, newAdmin(t, b), "kafka-go-admin-warmup", 1, nil)
	cl := newKafkaGoClient(t, b)
	ctx := testCtx(t, 30*time.Second)
	const topic, parts = "kafka-go-admin", 3

	create := &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             topic,
		NumPartitions:     parts,
		ReplicationFactor: 1,
		ConfigEntries:     []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}},
	}}}
	resp, err := cl.CreateTopics(ctx, create)
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("kafka-go CreateTopics: %v / %v", err, resp)
	}
	resp, err = cl.CreateTopics(ctx, create)
	if err != nil || !errors.Is(resp.Errors[topic], kafka.TopicAlreadyExists) {
		t.Fatalf("kafka-go CreateTopics of an existing topic: %v / %v, want TOPIC_ALREADY_EXISTS", err, resp)
	}
	checkConfigs(t, newAdmin(t, b), topic, map[string]string{"retention.ms": "3600000"})

	waitFor(t, 15*time.Second, "kafka-go Metadata shows "+topic+" led by broker 1", func() error {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return err
		}
		return kafkaGoTopicLedBy1(md, topic, parts, brokerPort(t, b))
	})

	// Partition p holds 10*(p+1) records.
	w := &kafka.Writer{
		Addr: kafka.TCP(b.Addr()), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
		Balancer:  kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.WriterData.(int) }),
		Transport: cl.Transport,
	}
	var msgs []kafka.Message
	for p := range parts {
		for i := range 10 * (p + 1) {
			msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, "%d-%d", p, i), WriterData: p})
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go WriteMessages: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close kafka-go Writer: %v", err)
	}
	var req []kafka.OffsetRequest
	for p := range parts {
		req = append(req, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatalf("kafka-go ListOffsets: %v", err)
	}
	got := lo.Topics[topic]
	slices.SortFunc(got, func(x, y kafka.PartitionOffsets) int { return x.Partition - y.Partition })
	if len(got) != parts {
		t.Fatalf("kafka-go ListOffsets: %d partitions %+v, want %d", len(got), got, parts)
	}
	for p, po := range got {
		if po.Partition != p || po.Error != nil || po.FirstOffset != 0 || po.LastOffset != int64(10*(p+1)) {
			t.Errorf("kafka-go ListOffsets partition %+v, want partition %d first 0 last %d", po, p, 10*(p+1))
		}
	}

	del, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || del.Errors[topic] != nil {
		t.Fatalf("kafka-go DeleteTopics: %v / %v", err, del)
	}
	waitFor(t, 15*time.Second, "kafka-go Metadata reports "+topic+" gone", func() error {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return err
		}
		if len(md.Topics) != 1 || !errors.Is(md.Topics[0].Error, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("metadata topics %+v, want %s with UNKNOWN_TOPIC_OR_PARTITION", md.Topics, topic)
		}
		return nil
	})
	del, err = cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || !errors.Is(del.Errors[topic], kafka.UnknownTopicOrPartition) {
		t.Fatalf("kafka-go DeleteTopics of a deleted topic: %v / %v, want UNKNOWN_TOPIC_OR_PARTITION", err, del)
	}
}

// kafkaGoTopicLedBy1 checks a kafka-go Metadata answer for a single-node
// broker (node.id 1) on port: the broker and controller are node 1, and
// every partition of topic is led by it, its only replica and ISR member.
func kafkaGoTopicLedBy1(md *kafka.MetadataResponse, topic string, parts, port int) error {
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Brokers[0].Port != port {
		return fmt.Errorf("brokers %+v, want node 1 on port %d", md.Brokers, port)
	}
	if md.Controller.ID != 1 {
		return fmt.Errorf("controller %+v, want node 1", md.Controller)
	}
	if len(md.Topics) != 1 || md.Topics[0].Name != topic || md.Topics[0].Error != nil {
		return fmt.Errorf("topics %+v, want %s", md.Topics, topic)
	}
	return kafkaGoPartitionsLedBy1(md.Topics[0].Partitions, parts, port)
}

// kafkaGoPartitionsLedBy1 checks that partitions 0..parts-1 are each led
// by node 1 on port, their only replica and ISR member.
func kafkaGoPartitionsLedBy1(ps []kafka.Partition, parts, port int) error {
	if len(ps) != parts {
		return fmt.Errorf("%d partitions, want %d", len(ps), parts)
	}
	ids := make([]int, 0, parts)
	for _, p := range ps {
		ids = append(ids, p.ID)
		if p.Error != nil || p.Leader.ID != 1 || p.Leader.Port != port ||
			len(p.Replicas) != 1 || p.Replicas[0].ID != 1 || len(p.Isr) != 1 || p.Isr[0].ID != 1 {
			return fmt.Errorf("partition %+v, want led by node 1 on port %d, replicas and ISR [1]", p, port)
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		if id != i {
			return fmt.Errorf("partition IDs %v, want 0..%d", ids, parts-1)
		}
	}
	return nil
}

// TestKafkaGoConn drives kafka-go's low-level Conn: DialLeader,
// ReadPartitions, Brokers, Controller, WriteMessages, ReadOffsets, Seek and
// ReadBatch on a partition, and CreateTopics/DeleteTopics through the
// controller's Conn.
func TestKafkaGoConn(t *testing.T) {
	b := StartBroker(t)
	adm := newAdmin(t, b)
	const topic, parts, n = "kafka-go-conn", 2, 300
	createTopic(t, adm, topic, parts, nil)
	ctx := testCtx(t, 30*time.Second)
	port := brokerPort(t, b)

	conn, err := kafkaGoDialer("compat-kafka-go-conn").DialLeader(ctx, "tcp", b.Addr(), topic, 1)
	if err != nil {
		t.Fatalf("kafka-go DialLeader %s/1: %v", topic, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("kafka-go ReadPartitions: %v", err)
	}
	if err := kafkaGoPartitionsLedBy1(ps, parts, port); err != nil {
		t.Fatalf("kafka-go ReadPartitions: %v", err)
	}
	brokers, err := conn.Brokers()
	if err != nil || len(brokers) != 1 || brokers[0].ID != 1 || brokers[0].Port != port {
		t.Fatalf("kafka-go Brokers: %+v, %v; want node 1 on port %d", brokers, err, port)
	}
	ctrl, err := conn.Controller()
	if err != nil || ctrl.ID != 1 || ctrl.Port != port {
		t.Fatalf("kafka-go Controller: %+v, %v; want node 1 on port %d", ctrl, err, port)
	}

	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "conn-%d", i)}
	}
	for i := 0; i < n; i += 100 {
		if _, err := conn.WriteMessages(msgs[i : i+100]...); err != nil {
			t.Fatalf("kafka-go Conn.WriteMessages %d..%d: %v", i, i+99, err)
		}
	}
	first, last, err := conn.ReadOffsets()
	if err != nil || first != 0 || last != n {
		t.Fatalf("kafka-go ReadOffsets: %d..%d, %v; want 0..%d", first, last, err, n)
	}
	if _, err := conn.Seek(0, kafka.SeekAbsolute); err != nil {
		t.Fatalf("kafka-go Seek: %v", err)
	}
	var read []kafka.Message
	for len(read) < n {
		batch := conn.ReadBatch(1, 1<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			read = append(read, m)
		}
		if hw := batch.HighWaterMark(); hw != n {
			t.Errorf("kafka-go ReadBatch high watermark %d, want %d", hw, n)
		}
		if err := batch.Close(); err != nil {
			t.Fatalf("kafka-go ReadBatch after %d messages: %v", len(read), err)
		}
	}
	for i, m := range read {
		if m.Partition != 1 || m.Offset != int64(i) || !bytes.Equal(m.Key, msgs[i].Key) || !bytes.Equal(m.Value, msgs[i].Value) {
			t.Fatalf("ReadBatch message #%d: %d/%d %q=%q, want 1/%d %q=%q", i, m.Partition, m.Offset, m.Key, m.Value, i, msgs[i].Key, msgs[i].Value)
		}
	}
	if len(read) != n {
		t.Fatalf("ReadBatch returned %d messages, want %d", len(read), n)
	}

	// Topic admin on a plain Conn goes to the controller.
	cc, err := kafkaGoDialer("compat-kafka-go-conn").DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("kafka-go dial controller: %v", err)
	}
	defer cc.Close()
	const extra = "kafka-go-conn-extra"
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: extra, NumPartitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatalf("kafka-go Conn.CreateTopics: %v", err)
	}
	waitTopicReady(t, adm, extra, 3)
	if err := cc.DeleteTopics(extra); err != nil {
		t.Fatalf("kafka-go Conn.DeleteTopics: %v", err)
	}
	franz := newClient(t, b)
	waitFor(t, 15*time.Second, extra+" deleted", func() error {
		names := topicNames(metadataTopics(t, franz, nil))
		if slices.Contains(names, extra) {
			return fmt.Errorf("still listed: %v", names)
		}
		return nil
	})
}

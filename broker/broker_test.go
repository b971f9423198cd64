package broker

import (
	"context"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// testBroker is one in-process broker with its own embedded etcd.
type testBroker struct {
	*Broker
	addr string
	cfg  *config.Config
}

func startBroker(t *testing.T, dir string, mutate ...func(*config.Config)) *testBroker {
	t.Helper()
	cfg := config.NewConfig()
	cfg.NodeID = 1
	cfg.Listeners = []config.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 0}}
	cfg.LogDirs = []string{dir}
	cfg.EtcdEmbedClientURL = "http://127.0.0.1:0"
	cfg.EtcdEmbedPeerURL = "http://127.0.0.1:0"
	for _, m := range mutate {
		m(cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	tb := &testBroker{Broker: b, addr: b.listeners[0].Addr().String(), cfg: cfg}
	t.Cleanup(func() { tb.stop(t) })
	// Wait until this broker is controller, so admin requests succeed.
	deadline := time.Now().Add(10 * time.Second)
	for b.controller.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("broker did not become controller")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tb
}

func (tb *testBroker) stop(t *testing.T) {
	t.Helper()
	if tb.Broker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	tb.Broker = nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// makeBatch builds a valid v2 record batch of n records.
func makeBatch(producerID int64, epoch int16, seq int32, n int, ts int64) []byte {
	var records []byte
	for i := 0; i < n; i++ {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Key = []byte("k")
		r.Value = []byte("value")
		records = r.AppendTo(records)
	}
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.LastOffsetDelta = int32(n - 1)
	b.FirstTimestamp, b.MaxTimestamp = ts, ts
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = producerID, epoch, seq
	b.NumRecords = int32(n)
	b.Records = records
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	b.CRC = int32(crc)
	return b.AppendTo(nil)
}

func produceRaw(t *testing.T, cl *kgo.Client, version int16, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest(t, cl, req).(*kmsg.ProduceResponse)
	return resp.Topics[0].Partitions[0]
}

// rawRequest sends req at exactly its set version on a fresh connection to
// the client's first seed broker (kgo would renegotiate the version).
func rawRequest(t *testing.T, cl *kgo.Client, req kmsg.Request) kmsg.Response {
	t.Helper()
	addr := cl.OptValue(kgo.SeedBrokers).([]string)[0]
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	resp, err := roundTrip(nc, "raw-test", req, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestIdempotentProduce(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "idem", 1, nil)

	initReq := kmsg.NewPtrInitProducerIDRequest()
	initResp, err := initReq.RequestWith(context.Background(), cl)
	if err != nil || initResp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %v", err, initResp)
	}
	pid := initResp.ProducerID
	now := time.Now().UnixMilli()

	steps := []struct {
		name       string
		epoch      int16
		seq        int32
		n          int
		wantErr    *kerr.Error
		wantOffset int64
	}{
		{"first", 0, 0, 3, nil, 0},
		{"retried duplicate gets its original offset", 0, 0, 3, nil, 0},
		{"next in sequence", 0, 3, 2, nil, 3},
		{"older duplicate still detected", 0, 0, 3, nil, 0},
		{"gap", 0, 9, 1, kerr.OutOfOrderSequenceNumber, -1},
		{"new epoch must start at 0", 1, 5, 1, kerr.OutOfOrderSequenceNumber, -1},
		{"new epoch", 1, 0, 1, nil, 5},
		{"stale epoch", 0, 5, 1, kerr.InvalidProducerEpoch, -1},
	}
	for _, s := range steps {
		got := produceRaw(t, cl, 11, "idem", 0, makeBatch(pid, s.epoch, s.seq, s.n, now))
		if err := kerr.ErrorForCode(got.ErrorCode); err != s.wantErr && !(err == nil && s.wantErr == nil) {
			t.Fatalf("%s: error %v, want %v", s.name, err, s.wantErr)
		}
		if s.wantErr == nil && got.BaseOffset != s.wantOffset {
			t.Fatalf("%s: offset %d, want %d", s.name, got.BaseOffset, s.wantOffset)
		}
	}
	if hw := listLatest(t, cl, "idem", 0); hw != 6 {
		t.Fatalf("log end %d, want 6 (duplicates must not be written)", hw)
	}
}

func listLatest(t *testing.T, cl *kgo.Client, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("list offsets: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

func TestProduceRejectsBadBatchesWritingNothing(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "strict", 1, map[string]string{"max.message.bytes": "2000"})
	now := time.Now().UnixMilli()

	corrupt := makeBatch(-1, -1, -1, 2, now)
	corrupt[len(corrupt)-1] ^= 0xff
	if got := produceRaw(t, cl, 11, "strict", 0, corrupt); got.ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("corrupt batch: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := produceRaw(t, cl, 11, "strict", 0, makeBatch(-1, -1, -1, 200, now)); got.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("large batch: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	two := append(makeBatch(-1, -1, -1, 1, now), makeBatch(-1, -1, -1, 1, now)...)
	if got := produceRaw(t, cl, 11, "strict", 0, two); got.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("two batches: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := produceRaw(t, cl, 11, "strict", 7, makeBatch(-1, -1, -1, 1, now)); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if hw := listLatest(t, cl, "strict", 0); hw != 0 {
		t.Fatalf("log end %d after rejected batches, want 0", hw)
	}
	if got := produceRaw(t, cl, 11, "strict", 0, makeBatch(-1, -1, -1, 2, now)); got.ErrorCode != 0 || got.BaseOffset != 0 {
		t.Fatalf("healthy batch after rejections: %v offset %d", kerr.ErrorForCode(got.ErrorCode), got.BaseOffset)
	}
}

func TestFetchSessionIncremental(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "sess", 2, nil)
	now := time.Now().UnixMilli()
	produceRaw(t, cl, 11, "sess", 0, makeBatch(-1, -1, -1, 3, now))

	fetch := func(sessionID, epoch int32, parts map[int32]int64) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID = -1
		req.MaxBytes = 1 << 20
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if len(parts) > 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "sess"
			for p, off := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
				rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		return rawRequest(t, cl, req).(*kmsg.FetchResponse)
	}
	count := func(r *kmsg.FetchResponse) (parts, withData int) {
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				parts++
				if len(p.RecordBatches) > 0 {
					withData++
				}
			}
		}
		return
	}

	full := fetch(0, 0, map[int32]int64{0: 0, 1: 0})
	if full.ErrorCode != 0 || full.SessionID == 0 {
		t.Fatalf("session not created: err %d id %d", full.ErrorCode, full.SessionID)
	}
	if p, d := count(full); p != 2 || d != 1 {
		t.Fatalf("full fetch: %d partitions, %d with data; want 2, 1", p, d)
	}
	id := full.SessionID
	// Nothing changed: an incremental fetch names no partitions.
	inc := fetch(id, 1, map[int32]int64{0: 3})
	if p, _ := count(inc); inc.ErrorCode != 0 || p != 0 {
		t.Fatalf("idle incremental fetch: err %d, %d partitions", inc.ErrorCode, p)
	}
	produceRaw(t, cl, 11, "sess", 1, makeBatch(-1, -1, -1, 2, now))
	inc = fetch(id, 2, nil)
	if p, d := count(inc); p != 1 || d != 1 || inc.Topics[0].Partitions[0].Partition != 1 {
		t.Fatalf("incremental fetch after produce: %d partitions, %d with data", p, d)
	}
	if bad := fetch(id, 7, nil); bad.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("wrong epoch: %v", kerr.ErrorForCode(bad.ErrorCode))
	}
	if bad := fetch(12345, 1, nil); bad.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %v", kerr.ErrorForCode(bad.ErrorCode))
	}
}

func TestLongPollWakesOnAppend(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "poll", 1, nil)
	producer := newClient(t, tb.addr)

	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 10000, 1, 1<<20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "poll"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	start := time.Now()
	done := make(chan *kmsg.FetchResponse, 1)
	req.SetVersion(12)
	go func() {
		done <- rawRequest(t, cl, req).(*kmsg.FetchResponse)
	}()
	time.Sleep(200 * time.Millisecond)
	produceRaw(t, producer, 11, "poll", 0, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli()))
	resp := <-done
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("long poll took %v; it should wake on append", elapsed)
	}
	if resp == nil || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatal("long poll returned no records")
	}
}

func TestRestartKeepsDataAndTopics(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, dir)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "keep", 1, nil)
	for i := 0; i < 5; i++ {
		produceRaw(t, cl, 11, "keep", 0, makeBatch(-1, -1, -1, 10, time.Now().UnixMilli()))
	}
	cl.Close()
	tb.stop(t)

	tb2 := startBroker(t, dir)
	cl2 := newClient(t, tb2.addr)
	if got := listLatest(t, cl2, "keep", 0); got != 50 {
		t.Fatalf("after restart log end is %d, want 50", got)
	}
}

func TestUnsupportedVersions(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "old", 1, nil)
	// Produce v0-v2 is advertised but refused by closing the connection, as
	// Kafka 4.x does.
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(2)
	req.Acks = 1
	nc, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(kmsg.NewRequestFormatter().AppendRequest(nil, req, 1)); err != nil {
		t.Fatal(err)
	}
	if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("produce v2: read %d bytes, err %v; want the connection closed", n, err)
	}
	versions, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range versions.ApiKeys {
		if k.ApiKey == int16(kmsg.Produce) && k.MinVersion != 0 {
			t.Fatalf("produce advertised from v%d, want v0", k.MinVersion)
		}
		if k.ApiKey == int16(kmsg.Fetch) && k.MinVersion != 4 {
			t.Fatalf("fetch advertised from v%d, want v4", k.MinVersion)
		}
	}
}

func TestRetentionDeletesOldSegments(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) { c.LogRetentionCheckIntervalMs = 100 })
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "short", 1, map[string]string{"segment.bytes": "1024", "retention.ms": "1000", "file.delete.delay.ms": "0"})
	old := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 20; i++ {
		if got := produceRaw(t, cl, 11, "short", 0, makeBatch(-1, -1, -1, 10, old)); got.ErrorCode != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(got.ErrorCode))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "short"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -2
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if start := resp.Topics[0].Partitions[0].Offset; start > 0 {
			if end := listLatest(t, cl, "short", 0); end != 200 {
				t.Fatalf("log end %d after retention, want 200", end)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("retention.ms=1000 never raised the log start offset of hour-old segments")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

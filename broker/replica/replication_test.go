package replica

import (
	"hash/crc32"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
)

// leaderBatch builds a batch as a leader stored it: n records from base,
// written in leader epoch epoch.
func leaderBatch(base int64, n int, epoch int32) []byte {
	var records []byte
	for i := 0; i < n; i++ {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = []byte("v")
		records = r.AppendTo(records)
	}
	b := kmsg.NewRecordBatch()
	b.FirstOffset, b.PartitionLeaderEpoch, b.Magic = base, epoch, 2
	b.LastOffsetDelta, b.NumRecords = int32(n-1), int32(n)
	b.FirstTimestamp, b.MaxTimestamp = time.Now().UnixMilli(), time.Now().UnixMilli()
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.Records = records
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// TestHighWatermarkBehindEpoch: a follower that becomes leader while its
// high watermark trails its log end knows where its epoch starts but not
// yet what is committed, until a follower reports (then ListOffsets can
// answer again).
func TestHighWatermarkBehindEpoch(t *testing.T) {
	p, err := Open(t.TempDir(), "t", 0, [16]byte{1}, Config{Log: storage.NewLogConfig(), MaxBatchBytes: 1 << 20, MinInsyncReplicas: 1},
		false, storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rs := ReplicaSet{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, MinISR: 1}
	p.MakeFollower(2, 0, rs)
	if err := p.AppendAsFollower(leaderBatch(0, 10, 0), 4); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermarkBehindEpoch() {
		t.Fatal("a follower reports behind-epoch")
	}
	if err := p.MakeLeader(1, rs, 1); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("new leader's high watermark %d, want the 4 it had as follower", hw)
	}
	if !p.HighWatermarkBehindEpoch() {
		t.Fatal("high watermark 4 below the epoch start 10: want behind")
	}
	res, err := p.ReadForFollower(FollowerFetch{ReplicaID: 2, FetchOffset: 10, LogStartOffset: 0, LastFetchedEpoch: 0, CurrentLeaderEpoch: 1, MaxBytes: 1 << 20}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res.Data.Release()
	if hw := p.HighWatermark(); hw != 10 || p.HighWatermarkBehindEpoch() {
		t.Fatalf("after the follower reported offset 10: high watermark %d, behind %v; want 10, false", hw, p.HighWatermarkBehindEpoch())
	}
}

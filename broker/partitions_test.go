package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker/config"
)

// TestPartitionsSpreadOverLogDirs: with two log.dirs, new partitions go to
// the dir holding the fewest, so six partitions land three and three.
func TestPartitionsSpreadOverLogDirs(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	tb := startBroker(t, dirA, func(c *config.Config) { c.LogDirs = []string{dirA, dirB + "/"} }) // a trailing slash, as operators write
	cl := newClient(t, tb.addr, kgo.DefaultProduceTopic("spread"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "spread", 6, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := int32(0); p < 6; p++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(dir string) int {
		matches, _ := filepath.Glob(filepath.Join(dir, "spread-*"))
		return len(matches)
	}
	if a, b := count(dirA), count(dirB); a != 3 || b != 3 {
		entries, _ := os.ReadDir(dirA)
		t.Fatalf("partitions per log dir: %d and %d, want 3 and 3 (first dir holds %d entries)", a, b, len(entries))
	}
}

// TestServesWhileRecovering (issue 10): after a kill, a broker with
// thousands of partitions on disk serves produce on a partition as soon as
// it starts, while the others are still being opened and recovered in the
// background (one partition's recovery no longer holds a broker-wide
// lock), and a stop before every partition is open leaves the dir to be
// recovered again.
func TestServesWhileRecovering(t *testing.T) {
	const many = 3000
	dir := t.TempDir()
	slow := func(c *config.Config) { c.NumRecoveryThreadsPerDataDir = 1 }
	tb := startBroker(t, dir, slow)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "many", many, nil)
	// Named to sort last: the background opener reaches it last.
	createTopic(t, cl, "zz-hot", 1, nil)
	waitUntil(t, 60*time.Second, "every partition is open", func() bool {
		return len(tb.partitions.all()) == many+1
	})
	for i := 0; i < 3; i++ {
		produceRaw(t, cl, 11, "zz-hot", 0, makeBatch(-1, -1, -1, 10, time.Now().UnixMilli()))
	}
	cl.Close()
	tb.Broker.kill()
	tb.Broker = nil

	start := time.Now()
	tb2 := startBroker(t, dir, slow)
	cl2 := newClient(t, tb2.addr)
	resp := produceRaw(t, cl2, 11, "zz-hot", 0, makeBatch(-1, -1, -1, 10, time.Now().UnixMilli()))
	served := time.Since(start)
	if resp.ErrorCode != 0 || resp.BaseOffset != 30 {
		t.Fatalf("produce right after the restart: %s at offset %d, want offset 30", kerr.ErrorForCode(resp.ErrorCode), resp.BaseOffset)
	}
	if tb2.partitions.recovered.Load() {
		t.Fatalf("every partition was open before the first produce was served (%v after start): nothing shows that serving and recovery overlap", served)
	}
	open := len(tb2.partitions.all())
	waitUntil(t, 120*time.Second, "the background recovery finishes", func() bool { return tb2.partitions.recovered.Load() })
	t.Logf("produce served %v after the restart, with %d of %d partitions open; all open after %v", served, open, many+1, time.Since(start))
}

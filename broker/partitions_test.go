package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

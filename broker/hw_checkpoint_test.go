package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/storage"
)

// TestHighWatermarkCheckpoint: a clean stop writes each log dir's
// replication-offset-checkpoint, and a broker restarted alone starts its
// partitions at the checkpointed high watermarks instead of the log start
// (before, a replica's high watermark restarted at 0 until a leader told it
// otherwise).
func TestHighWatermarkCheckpoint(t *testing.T) {
	// Log dirs written with a trailing slash, as operators do.
	c := startCluster(t, 3, func(cfg *config.Config) { cfg.LogDirs = []string{cfg.LogDirs[0] + "/"} })
	createReplicatedTopic(t, c, "hwc", 2, "2")
	waitUntil(t, 10*time.Second, "full ISRs", func() bool { return len(c.isrOf("hwc", 0)) == 3 && len(c.isrOf("hwc", 1)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := c.client(kgo.DefaultProduceTopic("hwc"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < 150; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int32]int64{0: 75, 1: 75}
	waitUntil(t, 10*time.Second, "every replica knows the high watermarks", func() bool {
		for _, b := range c.brokers {
			for part, hw := range want {
				p, err := b.partitions.hosted("hwc", part)
				if err != nil || p.HighWatermark() != hw {
					return false
				}
			}
		}
		return true
	})
	for i := range c.brokers {
		c.stop(i)
	}
	saved, err := storage.ReadOffsetCheckpoint(c.dirs[0], storage.ReplicationOffsetCheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	for part, hw := range want {
		if got := saved[storage.TopicPartition{Topic: "hwc", Partition: part}]; got != hw {
			t.Errorf("checkpointed high watermark of hwc-%d: %d, want %d (file: %v)", part, got, hw, saved)
		}
	}

	// The first broker stopped is out of every ISR now, so nothing but the
	// checkpoint can tell it its high watermarks.
	c.start(0)
	for part, hw := range want {
		p, err := c.brokers[0].partitions.hosted("hwc", part)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.HighWatermark(); got != hw {
			t.Errorf("after restart, hwc-%d high watermark %d, want the checkpointed %d", part, got, hw)
		}
	}
}

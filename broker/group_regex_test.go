package broker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker/config"
)

// TestGroupRegexAssignsInternalTopic: a franz-go KIP-848 consumer
// subscribed by regex (resolved by the broker) is assigned
// __consumer_offsets when the regex matches it, as a Kafka 4 broker
// assigns it: Kafka's server-side regex resolution skips no internal topic.
func TestGroupRegexAssignsInternalTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.OffsetsTopicNumPartitions, c.OffsetsTopicReplicationFactor = 2, 1
		c.GroupInitialRebalanceDelayMs = 0
	})
	// franz-go joins once a regex matches a topic it would consume itself
	// (it never picks an internal topic client-side), so a user topic
	// matches too; the broker then resolves the regex on its own.
	createTopic(t, newClient(t, tb.addr), "regex-user", 1, nil)
	var mu sync.Mutex
	assigned := map[string][]int32{}
	newClient(t, tb.addr,
		kgo.ConsumerGroup("regex-internal"),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics("__consumer_off.*", "^regex-user$"),
		kgo.ServerSideBalancer(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, got map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for topic, ps := range got {
				assigned[topic] = append(assigned[topic], ps...)
			}
		}),
	)
	waitUntil(t, 20*time.Second, "__consumer_offsets is assigned to the regex consumer", func() bool {
		mu.Lock()
		defer mu.Unlock()
		ps := slices.Sorted(slices.Values(assigned[offsetsTopic]))
		return slices.Equal(ps, []int32{0, 1})
	})
}

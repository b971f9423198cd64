package group

import (
	"reflect"
	"testing"

	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

// TestConsumerGroupRegexMatchesInternalTopics: a regex subscription is
// resolved against every topic, internal ones included, as Kafka 4's
// GroupMetadataManager.refreshRegularExpressions resolves it.
func TestConsumerGroupRegexMatchesInternalTopics(t *testing.T) {
	tt := newTopicTable()
	tt.set("__consumer_offsets", 3)
	tt.set("__transaction_state", 2)
	tt.set("orders", 1)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))

	offsets := "__consumer_off.*"
	a := newCClient(s, tt, "g-offsets")
	a.topics, a.regex = nil, &offsets
	a.join(t)
	want := []string{"__consumer_offsets 0", "__consumer_offsets 1", "__consumer_offsets 2"}
	if got := a.ownedList(); !reflect.DeepEqual(got, want) {
		t.Fatalf("regex %q owns %v, want %v", offsets, got, want)
	}

	all := ".*"
	b := newCClient(s, tt, "g-all")
	b.topics, b.regex = nil, &all
	b.join(t)
	if got := b.ownedList(); len(got) != 6 {
		t.Fatalf("regex %q owns %v, want the 6 partitions of __consumer_offsets, __transaction_state and orders", all, got)
	}
}

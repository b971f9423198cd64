package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeProducersOnFollower: as Kafka's
// ReplicaManager.activeProducerState, DescribeProducers is answered from
// any replica's log, so a follower lists the producers it replicated; a
// broker with no replica answers NOT_LEADER_OR_FOLLOWER and an unknown
// partition UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeProducersOnFollower(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(7)
	create.TimeoutMillis = 10000
	create.Topics = append(create.Topics, createTopicsEntry("producers", -1, []int32{1, 2}))
	cr := rawRequest(t, cl, create).(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(cr.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitUntil(t, 20*time.Second, "broker 1 leads with broker 2 in sync", func() bool {
		for _, b := range c.brokers {
			tp := b.view.Image().Topics["producers"]
			if tp == nil || tp.Partitions[0].State.Leader != 1 || len(tp.Partitions[0].State.ISR) != 2 {
				return false
			}
		}
		return true
	})
	clientOf := func(node int) *kgo.Client { return newClient(t, c.brokers[node-1].listeners[0].Addr().String()) }
	leader, follower, other := clientOf(1), clientOf(2), clientOf(3)

	const pid = 4242
	if got := produceRaw(t, leader, 11, "producers", 0, makeBatch(pid, 0, 0, 3, time.Now().UnixMilli())); got.ErrorCode != 0 {
		t.Fatalf("idempotent produce: %v", kerr.ErrorForCode(got.ErrorCode))
	}

	describe := func(cl *kgo.Client, partitions ...int32) []kmsg.DescribeProducersResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrDescribeProducersRequest()
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = "producers", partitions
		req.Topics = append(req.Topics, rt)
		resp := rawRequest(t, cl, req).(*kmsg.DescribeProducersResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(partitions) {
			t.Fatalf("describe producers: %+v", resp.Topics)
		}
		return resp.Topics[0].Partitions
	}
	lists := func(p kmsg.DescribeProducersResponseTopicPartition) bool {
		return p.ErrorCode == 0 && slices.ContainsFunc(p.ActiveProducers, func(ap kmsg.DescribeProducersResponseTopicPartitionActiveProducer) bool {
			return ap.ProducerID == pid && ap.ProducerEpoch == 0 && ap.LastSequence == 2
		})
	}

	if p := describe(leader, 0)[0]; !lists(p) {
		t.Fatalf("leader: %v, producers %+v; want producer %d at sequence 2", kerr.ErrorForCode(p.ErrorCode), p.ActiveProducers, pid)
	}
	var last kmsg.DescribeProducersResponseTopicPartition
	deadline := time.Now().Add(10 * time.Second)
	for last = describe(follower, 0)[0]; !lists(last); last = describe(follower, 0)[0] {
		if last.ErrorCode != 0 || time.Now().After(deadline) {
			t.Fatalf("follower: %v, producers %+v; want NONE and producer %d at sequence 2", kerr.ErrorForCode(last.ErrorCode), last.ActiveProducers, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := describe(other, 0)[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Errorf("broker without a replica: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := describe(follower, 5)[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(p.ErrorCode))
	}
}

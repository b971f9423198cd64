package broker

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestLeaderHints (KIP-951): a Fetch v16 or Produce v10 to a broker that
// does not host the partition answers NOT_LEADER_OR_FOLLOWER with the
// leader and its epoch, and the response carries the leader's endpoint for
// the client's listener; Fetch v15 and Produce v9 get the error alone.
func TestLeaderHints(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	createTopic(t, cl, "hints", 1, nil)
	var leader, leaderEpoch int32 = -1, -1
	var topicID [16]byte
	waitUntil(t, 20*time.Second, "the topic has a leader everywhere", func() bool {
		for _, b := range c.brokers {
			tp := b.view.Image().Topics["hints"]
			if tp == nil || tp.Partitions[0].State.Leader < 0 {
				return false
			}
			topicID = tp.ID
			leader, leaderEpoch = tp.Partitions[0].State.Leader, tp.Partitions[0].State.LeaderEpoch
		}
		return true
	})
	other := c.brokers[leader%3] // a broker that is not the only replica
	leaderAddr := c.brokers[leader-1].listeners[0].Addr().(*net.TCPAddr)
	otherClient := newClient(t, other.listeners[0].Addr().String())

	fetch := func(version int16) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(version)
		req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, 0, 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "hints", topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes, rp.LastFetchedEpoch = 0, -1, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, otherClient, req).(*kmsg.FetchResponse)
	}

	resp := fetch(16)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("v16 fetch from node %d: %s, want NOT_LEADER_OR_FOLLOWER", other.nodeID, kerr.ErrorForCode(p.ErrorCode))
	}
	if p.CurrentLeader.LeaderID != leader || p.CurrentLeader.LeaderEpoch != leaderEpoch {
		t.Errorf("current leader %d at epoch %d, want %d at %d", p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch, leader, leaderEpoch)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != leader ||
		resp.Brokers[0].Host != leaderAddr.IP.String() || resp.Brokers[0].Port != int32(leaderAddr.Port) {
		t.Errorf("node endpoints %+v, want node %d at %s", resp.Brokers, leader, net.JoinHostPort(leaderAddr.IP.String(), strconv.Itoa(leaderAddr.Port)))
	}

	resp = fetch(15)
	p = resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.NotLeaderForPartition.Code || p.CurrentLeader.LeaderID != -1 || len(resp.Brokers) != 0 {
		t.Errorf("v15 fetch: %s, current leader %d, %d node endpoints; want NOT_LEADER_OR_FOLLOWER and no hint",
			kerr.ErrorForCode(p.ErrorCode), p.CurrentLeader.LeaderID, len(resp.Brokers))
	}

	produce := func(version int16) *kmsg.ProduceResponse {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(version)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "hints"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = 0, makeBatch(-1, -1, -1, 1, time.Now().UnixMilli())
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, otherClient, req).(*kmsg.ProduceResponse)
	}
	presp := produce(10)
	pp := presp.Topics[0].Partitions[0]
	if pp.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("v10 produce to node %d: %s, want NOT_LEADER_OR_FOLLOWER", other.nodeID, kerr.ErrorForCode(pp.ErrorCode))
	}
	if pp.CurrentLeader.LeaderID != leader || pp.CurrentLeader.LeaderEpoch != leaderEpoch {
		t.Errorf("produce: current leader %d at epoch %d, want %d at %d", pp.CurrentLeader.LeaderID, pp.CurrentLeader.LeaderEpoch, leader, leaderEpoch)
	}
	if len(presp.Brokers) != 1 || presp.Brokers[0].NodeID != leader || presp.Brokers[0].Port != int32(leaderAddr.Port) {
		t.Errorf("produce: node endpoints %+v, want node %d on port %d", presp.Brokers, leader, leaderAddr.Port)
	}
	presp = produce(9)
	if pp := presp.Topics[0].Partitions[0]; pp.ErrorCode != kerr.NotLeaderForPartition.Code || pp.CurrentLeader.LeaderID != -1 || len(presp.Brokers) != 0 {
		t.Errorf("v9 produce: %s, current leader %d, %d node endpoints; want NOT_LEADER_OR_FOLLOWER and no hint",
			kerr.ErrorForCode(pp.ErrorCode), pp.CurrentLeader.LeaderID, len(presp.Brokers))
	}
}

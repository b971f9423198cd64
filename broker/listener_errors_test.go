package broker

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// TestClientListenerMissingOnLeader: in a cluster where broker 1 has a
// second listener EXTERNAL that broker 2 lacks, a client on EXTERNAL is
// answered as Kafka's KRaftMetadataCache and KafkaApis answer it. Metadata
// lists only broker 1; a partition led by broker 2 answers leader -1 with
// LISTENER_NOT_FOUND from v6 and LEADER_NOT_AVAILABLE below, broker 2 as an
// offline replica, and at v0 only the available replicas (and
// REPLICA_NOT_AVAILABLE for a partition whose leader is available).
// FindCoordinator for a coordinator on broker 2 is COORDINATOR_NOT_AVAILABLE.
func TestClientListenerMissingOnLeader(t *testing.T) {
	c := startCluster(t, 2, func(cfg *config.Config) {
		cfg.OffsetsTopicReplicationFactor = 1
		cfg.OffsetsTopicNumPartitions = 6
		if cfg.NodeID != 1 {
			return
		}
		cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "EXTERNAL", Host: "127.0.0.1", Port: 0})
		cfg.ListenerSecurityProtocolMap = maps.Clone(cfg.ListenerSecurityProtocolMap)
		cfg.ListenerSecurityProtocolMap["EXTERNAL"] = config.ProtocolPlaintext
	})
	internal := newClient(t, c.brokers[0].listeners[0].Addr().String())
	externalAddr := c.brokers[0].listeners[1].Addr().(*net.TCPAddr)
	external := newClient(t, externalAddr.String())

	// Partition 0 led by broker 2, partition 1 by broker 1; each has a
	// replica on the other.
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(7)
	create.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "split", -1, -1
	for p, replicas := range [][]int32{{2, 1}, {1, 2}} {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	create.Topics = append(create.Topics, rt)
	cr := rawRequest(t, internal, create).(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(cr.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var epochs [2]int32
	var isrs [2][]int32
	waitUntil(t, 20*time.Second, "broker 1 sees both leaders and full ISRs", func() bool {
		tp := c.brokers[0].view.Image().Topics["split"]
		if tp == nil || tp.Partitions[0].State.Leader != 2 || tp.Partitions[1].State.Leader != 1 ||
			len(tp.Partitions[0].State.ISR) != 2 || len(tp.Partitions[1].State.ISR) != 2 {
			return false
		}
		for i, p := range tp.Partitions {
			epochs[i], isrs[i] = p.State.LeaderEpoch, p.State.ISR
		}
		return true
	})

	metadata := func(cl *kgo.Client, version int16) *kmsg.MetadataResponse {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(version)
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("split")
		req.Topics = append(req.Topics, mt)
		resp := rawRequest(t, cl, req).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("v%d: topics %+v, want split with 2 partitions and no topic error", version, resp.Topics)
		}
		return resp
	}
	type want struct {
		code                   *kerr.Error // nil: NONE
		leader                 int32
		replicas, isr, offline []int32
		checkOffline           bool // v5+
	}
	check := func(version int16, p kmsg.MetadataResponseTopicPartition, w want) {
		t.Helper()
		var wantCode int16
		if w.code != nil {
			wantCode = w.code.Code
		}
		got := fmt.Sprintf("%v leader %d replicas %v isr %v", kerr.ErrorForCode(p.ErrorCode), p.Leader, p.Replicas, p.ISR)
		exp := fmt.Sprintf("%v leader %d replicas %v isr %v", kerr.ErrorForCode(wantCode), w.leader, w.replicas, w.isr)
		if w.checkOffline {
			got += fmt.Sprintf(" offline %v", p.OfflineReplicas)
			exp += fmt.Sprintf(" offline %v", w.offline)
		}
		if got != exp {
			t.Errorf("v%d partition %d: %s; want %s", version, p.Partition, got, exp)
		}
		if version >= 7 && p.LeaderEpoch != epochs[p.Partition] {
			t.Errorf("v%d partition %d: leader epoch %d, want %d (kept without a leader)", version, p.Partition, p.LeaderEpoch, epochs[p.Partition])
		}
	}
	brokersOf := func(resp *kmsg.MetadataResponse, port1 int) []int32 {
		var ids []int32
		for _, b := range resp.Brokers {
			ids = append(ids, b.NodeID)
			if b.NodeID == 1 && b.Port != int32(port1) {
				t.Errorf("broker 1 advertised on port %d, want %d", b.Port, port1)
			}
		}
		slices.Sort(ids)
		return ids
	}

	// Metadata.
	for _, v := range []int16{12, 6} {
		resp := metadata(external, v)
		if ids := brokersOf(resp, externalAddr.Port); !slices.Equal(ids, []int32{1}) {
			t.Errorf("v%d brokers %v, want only broker 1 (broker 2 has no EXTERNAL listener)", v, ids)
		}
		check(v, resp.Topics[0].Partitions[0], want{code: kerr.ListenerNotFound, leader: -1, replicas: []int32{2, 1}, isr: isrs[0], offline: []int32{2}, checkOffline: true})
		check(v, resp.Topics[0].Partitions[1], want{leader: 1, replicas: []int32{1, 2}, isr: isrs[1], offline: []int32{2}, checkOffline: true})
	}
	resp := metadata(external, 5)
	check(5, resp.Topics[0].Partitions[0], want{code: kerr.LeaderNotAvailable, leader: -1, replicas: []int32{2, 1}, isr: isrs[0], offline: []int32{2}, checkOffline: true})
	resp = metadata(external, 1)
	check(1, resp.Topics[0].Partitions[0], want{code: kerr.LeaderNotAvailable, leader: -1, replicas: []int32{2, 1}, isr: isrs[0]})
	check(1, resp.Topics[0].Partitions[1], want{leader: 1, replicas: []int32{1, 2}, isr: isrs[1]})
	// v0 lists only the replicas clients of EXTERNAL can reach.
	resp = metadata(external, 0)
	check(0, resp.Topics[0].Partitions[0], want{code: kerr.LeaderNotAvailable, leader: -1, replicas: []int32{1}, isr: []int32{1}})
	check(0, resp.Topics[0].Partitions[1], want{code: kerr.ReplicaNotAvailable, leader: 1, replicas: []int32{1}, isr: []int32{1}})

	// On PLAINTEXT, which both brokers have, nothing is missing.
	resp = metadata(internal, 12)
	if ids := brokersOf(resp, c.brokers[0].listeners[0].Addr().(*net.TCPAddr).Port); !slices.Equal(ids, []int32{1, 2}) {
		t.Errorf("PLAINTEXT brokers %v, want 1 and 2", ids)
	}
	check(12, resp.Topics[0].Partitions[0], want{leader: 2, replicas: []int32{2, 1}, isr: isrs[0], checkOffline: true})
	resp = metadata(internal, 0)
	check(0, resp.Topics[0].Partitions[1], want{leader: 1, replicas: []int32{1, 2}, isr: isrs[1]})

	t.Run("describe_cluster", func(t *testing.T) {
		resp := rawRequest(t, external, kmsg.NewPtrDescribeClusterRequest()).(*kmsg.DescribeClusterResponse)
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 {
			t.Errorf("EXTERNAL DescribeCluster brokers %+v, want only broker 1", resp.Brokers)
		}
	})

	t.Run("find_coordinator", func(t *testing.T) {
		keys := make([]string, 24)
		for i := range keys {
			keys[i] = fmt.Sprintf("group-%d", i)
		}
		find := func(cl *kgo.Client, version int16, keys ...string) *kmsg.FindCoordinatorResponse {
			t.Helper()
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.SetVersion(version)
			if version >= 4 {
				req.CoordinatorKeys = keys
			} else {
				req.CoordinatorKey = keys[0]
			}
			return rawRequest(t, cl, req).(*kmsg.FindCoordinatorResponse)
		}
		onNode := map[int32]string{}
		waitUntil(t, 20*time.Second, "__consumer_offsets has coordinators on both brokers", func() bool {
			for _, co := range find(internal, 4, keys...).Coordinators {
				if co.ErrorCode == 0 {
					onNode[co.NodeID] = co.Key
				}
			}
			return onNode[1] != "" && onNode[2] != ""
		})
		resp := find(external, 4, onNode[1], onNode[2])
		by := map[string]kmsg.FindCoordinatorResponseCoordinator{}
		for _, co := range resp.Coordinators {
			by[co.Key] = co
		}
		if co := by[onNode[1]]; co.ErrorCode != 0 || co.NodeID != 1 || co.Port != int32(externalAddr.Port) {
			t.Errorf("v4 coordinator on broker 1: %v node %d port %d, want broker 1 on EXTERNAL port %d", kerr.ErrorForCode(co.ErrorCode), co.NodeID, co.Port, externalAddr.Port)
		}
		if co := by[onNode[2]]; co.ErrorCode != kerr.CoordinatorNotAvailable.Code || co.NodeID != -1 || co.Port != -1 {
			t.Errorf("v4 coordinator on broker 2: %v node %d port %d, want COORDINATOR_NOT_AVAILABLE, node -1, port -1", kerr.ErrorForCode(co.ErrorCode), co.NodeID, co.Port)
		}
		old := find(external, 3, onNode[2])
		if old.ErrorCode != kerr.CoordinatorNotAvailable.Code || old.NodeID != -1 || old.Host != "" {
			t.Errorf("v3 coordinator on broker 2: %v node %d host %q, want COORDINATOR_NOT_AVAILABLE, node -1, no host", kerr.ErrorForCode(old.ErrorCode), old.NodeID, old.Host)
		}
	})
}

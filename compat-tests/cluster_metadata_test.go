package compat

// What the cluster's nodes say about topics and the controller, for
// cluster_harness_test.go: each node is asked on its own, and helpers wait
// until every live node agrees.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// PartState is one partition as a node's Metadata answer shows it.
type PartState struct {
	Leader, Epoch int32
	Replicas, ISR []int32
	ErrCode       int16
}

// MetadataSeenBy asks node nd alone for a topic's partitions.
func (c *Cluster) MetadataSeenBy(nd *Node, topic string) (map[int32]PartState, [16]byte, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(nd.Addr()), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return nil, [16]byte{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, [16]byte{}, fmt.Errorf("Metadata to node %d: %w", nd.ID, err)
	}
	resp := kresp.(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 {
		return nil, [16]byte{}, fmt.Errorf("node %d: %d topics in Metadata", nd.ID, len(resp.Topics))
	}
	mt := resp.Topics[0]
	if mt.ErrorCode != 0 {
		return nil, [16]byte{}, fmt.Errorf("node %d: topic %s: %s", nd.ID, topic, errCode(mt.ErrorCode))
	}
	out := make(map[int32]PartState)
	for _, p := range mt.Partitions {
		out[p.Partition] = PartState{Leader: p.Leader, Epoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, ErrCode: p.ErrorCode}
	}
	return out, mt.TopicID, nil
}

// liveNodes are the nodes that run and are not paused.
func (c *Cluster) liveNodes() []*Node {
	var out []*Node
	for _, nd := range c.Nodes {
		if nd.running() && !nd.isPaused() {
			out = append(out, nd)
		}
	}
	return out
}

// AgreedMetadata returns a topic's partitions once every live node answers
// the same leader and epoch for each, the leader being a live node.
func (c *Cluster) AgreedMetadata(topic string) (map[int32]PartState, error) {
	var first map[int32]PartState
	live := map[int32]bool{}
	for _, nd := range c.liveNodes() {
		live[nd.ID] = true
	}
	for _, nd := range c.liveNodes() {
		parts, _, err := c.MetadataSeenBy(nd, topic)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = parts
			for p, st := range parts {
				if st.ErrCode != 0 || !live[st.Leader] {
					return nil, fmt.Errorf("node %d: partition %d: leader %d (live %v), %s", nd.ID, p, st.Leader, live, errCode(st.ErrCode))
				}
			}
			continue
		}
		for p, st := range parts {
			if f := first[p]; f.Leader != st.Leader || f.Epoch != st.Epoch {
				return nil, fmt.Errorf("partition %d: node %d sees leader %d epoch %d, another node leader %d epoch %d", p, nd.ID, st.Leader, st.Epoch, f.Leader, f.Epoch)
			}
		}
	}
	if first == nil {
		return nil, errors.New("no live node")
	}
	return first, nil
}

// WaitMetadata polls AgreedMetadata until cond accepts it.
func (c *Cluster) WaitMetadata(topic string, d time.Duration, what string, cond func(map[int32]PartState) error) map[int32]PartState {
	c.t.Helper()
	var out map[int32]PartState
	waitFor(c.t, d, what, func() error {
		parts, err := c.AgreedMetadata(topic)
		if err != nil {
			return err
		}
		if err := cond(parts); err != nil {
			return err
		}
		out = parts
		return nil
	})
	return out
}

// WaitFullISR waits until every partition of topic has every replica in its
// ISR, as every live node reports it.
func (c *Cluster) WaitFullISR(topic string, d time.Duration) map[int32]PartState {
	c.t.Helper()
	return c.WaitMetadata(topic, d, topic+": every replica in the ISR", func(parts map[int32]PartState) error {
		for p, st := range parts {
			if len(st.ISR) != len(st.Replicas) || len(st.Replicas) == 0 {
				return fmt.Errorf("partition %d: ISR %v of replicas %v", p, st.ISR, st.Replicas)
			}
		}
		return nil
	})
}

// WaitNewLeader waits until partition p of topic is led by a live node
// other than old, and returns it.
func (c *Cluster) WaitNewLeader(topic string, p, old int32, d time.Duration) PartState {
	c.t.Helper()
	parts := c.WaitMetadata(topic, d, fmt.Sprintf("%s-%d: a leader other than %d", topic, p, old), func(parts map[int32]PartState) error {
		if l := parts[p].Leader; l == old || l < 0 {
			return fmt.Errorf("leader still %d", l)
		}
		return nil
	})
	return parts[p]
}

// CreateTopic creates a replicated topic (replication factor -1: the
// broker's default.replication.factor) and waits until every replica is in
// sync.
func (c *Cluster) CreateTopic(topic string, partitions int32, configs map[string]*string) {
	c.t.Helper()
	ctx := testCtx(c.t, 30*time.Second)
	resp, err := c.Admin().CreateTopic(ctx, partitions, -1, configs, topic)
	if err != nil {
		c.t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Err != nil {
		c.t.Fatalf("create topic %s: %v (%s)", topic, resp.Err, resp.ErrMessage)
	}
	c.WaitFullISR(topic, 30*time.Second)
}

// WaitController waits until every live node names the same controller and
// cond accepts it, and returns its id.
func (c *Cluster) WaitController(d time.Duration, what string, cond func(id int32) error) int32 {
	c.t.Helper()
	var out int32 = -1
	waitFor(c.t, d, what, func() error {
		var seen []int32
		for _, nd := range c.liveNodes() {
			id, err := c.ControllerSeenBy(nd)
			if err != nil {
				return err
			}
			seen = append(seen, id)
		}
		if len(seen) == 0 {
			return errors.New("no live node")
		}
		for _, id := range seen {
			if id != seen[0] {
				return fmt.Errorf("live nodes name different controllers: %v", seen)
			}
		}
		if seen[0] < 0 {
			return errors.New("no controller")
		}
		if err := cond(seen[0]); err != nil {
			return err
		}
		out = seen[0]
		return nil
	})
	return out
}

// CreateTopicAssigned creates a topic with an explicit replica assignment
// (partition → brokers, the first preferred) and waits until every replica
// is in sync.
func (c *Cluster) CreateTopicAssigned(topic string, assignment map[int32][]int32) {
	c.t.Helper()
	ctx := testCtx(c.t, 30*time.Second)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 20000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, replicas := range assignment {
		ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		ra.Partition, ra.Replicas = p, replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.Client())
	if err != nil {
		c.t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 {
			c.t.Fatalf("create topic %s: %s", topic, errCode(t.ErrorCode))
		}
	}
	c.WaitFullISR(topic, 30*time.Second)
}

package broker

// Metadata: v0-13
//
// Behavior:
// * A null topic list (or, at v0, an empty one) means every topic; an empty
//   list at v1+ means none.
// * Unknown topics are auto-created with the broker defaults when
//   auto.create.topics.enable is on and the request allows it (always before
//   v4); the created topic is returned at once.
// * Brokers are advertised with the endpoint of the listener the client
//   connected through.
//
// Version notes:
// * v1: controller, rack, internal; v2: cluster ID; v4: allow auto-creation;
//   v5: offline replicas; v7: leader epoch; v8: authorized operations;
//   v9: flexible; v10: topic IDs; v12: lookup by topic ID.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

// authorizedOperationsOmitted is Kafka's sentinel for "not requested".
const authorizedOperationsOmitted = -2147483648

func handleMetadata(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.MetadataRequest)
	resp := r.ResponseKind().(*kmsg.MetadataResponse)
	img := c.b.view.Image()

	allowCreate := r.Version < 4 || r.AllowAutoTopicCreation
	if allowCreate && c.b.cfg.AutoCreateTopicsEnable && r.Topics != nil {
		created := false
		for _, t := range r.Topics {
			if t.Topic == nil || img.Topics[*t.Topic] != nil || validateTopicName(*t.Topic) != nil {
				continue
			}
			if c.b.autoCreate(*t.Topic) {
				created = true
			}
		}
		if created {
			img = c.b.view.Image()
		}
	}

	appendBrokers(c, img, &resp.Brokers)
	resp.ClusterID = kmsg.StringPtr(img.ClusterID)
	resp.ControllerID = img.ControllerID
	resp.AuthorizedOperations = authorizedOperationsOmitted

	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	if all {
		names := make([]string, 0, len(img.Topics))
		for name := range img.Topics {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			resp.Topics = append(resp.Topics, topicMetadata(c, img, img.Topics[name], r.Version))
		}
		return now(resp), nil
	}
	for _, rt := range r.Topics {
		var t *etcd.Topic
		switch {
		case rt.Topic != nil:
			t = img.Topics[*rt.Topic]
		case rt.TopicID != [16]byte{}:
			t = img.TopicsByID[rt.TopicID]
		}
		if t != nil {
			resp.Topics = append(resp.Topics, topicMetadata(c, img, t, r.Version))
			continue
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = rt.Topic
		mt.TopicID = rt.TopicID
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		if rt.Topic != nil && validateTopicName(*rt.Topic) != nil {
			mt.ErrorCode = kerr.InvalidTopicException.Code
		} else if rt.Topic == nil {
			mt.ErrorCode = kerr.UnknownTopicID.Code
		}
		mt.AuthorizedOperations = authorizedOperationsOmitted
		resp.Topics = append(resp.Topics, mt)
	}
	return now(resp), nil
}

// autoCreate creates a topic with the broker's defaults, as Kafka does for
// Metadata and (never) Produce requests. It reports whether the topic exists
// afterwards.
func (b *Broker) autoCreate(name string) bool {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if b.awaitController(ctx) == nil {
		return b.autoCreateOnController(ctx, name)
	}
	img := b.view.Image()
	spec, states, terr := b.planTopic(img, topicRequest{name: name, partitions: -1, rf: -1})
	if terr == nil {
		terr = b.createTopic(ctx, spec, states)
	}
	if terr != nil && terr.err != kerr.TopicAlreadyExists {
		b.logger.Warn("auto-creating topic failed", "topic", name, "err", terr.msg)
		return false
	}
	return true
}

// autoCreateOnController has the controller create the topic, as a Kafka
// 4.x broker forwards auto-creation: a CreateTopics with this broker's
// num.partitions and default.replication.factor. It then waits briefly for
// this broker's metadata to show the topic, so the client's next Metadata
// (if not this one) finds it.
func (b *Broker) autoCreateOnController(ctx context.Context, name string) bool {
	id := b.view.Image().ControllerID
	if id < 0 || id == b.nodeID || b.interBroker == nil {
		return false
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = name, b.cfg.NumPartitions, int16(b.cfg.DefaultReplicationFactor)
	req.Topics = append(req.Topics, t)
	resp, err := b.interBroker.forward(ctx, id, req)
	if err != nil {
		b.logger.Warn("auto-creating topic failed: controller unreachable", "topic", name, "controller", id, "err", err)
		return false
	}
	cr := resp.(*kmsg.CreateTopicsResponse)
	if len(cr.Topics) != 1 {
		return false
	}
	if code := cr.Topics[0].ErrorCode; code != 0 && code != kerr.TopicAlreadyExists.Code {
		b.logger.Warn("auto-creating topic failed", "topic", name, "controller", id, "err", kerr.ErrorForCode(code))
		return false
	}
	for b.view.Image().Topics[name] == nil {
		select {
		case <-ctx.Done():
			return true // created; this broker will see it shortly
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

func appendBrokers(c *conn, img *etcd.Image, out *[]kmsg.MetadataResponseBroker) {
	ids := registeredBrokerIDs(img)
	for _, id := range ids {
		info := img.Brokers[id]
		ep, ok := c.b.advertisedEndpoint(info, c.listener)
		if !ok {
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = id
		mb.Host = ep.Host
		mb.Port = ep.Port
		if info.Rack != "" {
			mb.Rack = kmsg.StringPtr(info.Rack)
		}
		*out = append(*out, mb)
	}
}

func topicMetadata(c *conn, img *etcd.Image, t *etcd.Topic, version int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = t.Name == "__consumer_offsets" || t.Name == "__transaction_state"
	mt.AuthorizedOperations = authorizedOperationsOmitted
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.ID
		mp.Leader = p.State.Leader
		mp.LeaderEpoch = p.State.LeaderEpoch
		mp.Replicas = p.Replicas
		mp.ISR = p.State.ISR
		for _, r := range p.Replicas {
			if _, alive := img.Brokers[r]; !alive {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if _, alive := img.Brokers[p.State.Leader]; !alive {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		}
		if mp.ISR == nil {
			mp.ISR = []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

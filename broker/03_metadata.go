package broker

// Metadata: v0-13
//
// Behavior:
// * A null topic list (or, at v0, an empty one) means every topic; an empty
//   list at v1+ means none.
// * Unknown topics are auto-created when auto.create.topics.enable is on and
//   the request allows it (always before v4), in the background as a Kafka
//   4.x broker forwards the creation to its controller
//   (AutoTopicCreationManager): the response that starts the creation, and
//   any while it is under way, answers the topic UNKNOWN_TOPIC_OR_PARTITION
//   with no partitions; later requests see the topic once this broker's
//   metadata shows it. __consumer_offsets and __transaction_state are
//   created with their coordinators' settings, other topics with
//   num.partitions and default.replication.factor.
// * A topic whose partition leader is not a registered broker answers
//   LEADER_NOT_AVAILABLE and leader -1 for that partition, no topic error;
//   a leader without an endpoint for the client's listener answers
//   LISTENER_NOT_FOUND (LEADER_NOT_AVAILABLE below v6), leader -1.
// * Brokers are advertised with the endpoint of the listener the client
//   connected through; a broker without that listener is not listed.
//
// Version notes:
// * v0: REPLICA_NOT_AVAILABLE, only available replicas listed.
// * v1: controller, rack, internal; v2: cluster ID; v4: allow auto-creation;
//   v5: offline replicas; v6: LISTENER_NOT_FOUND; v7: leader epoch;
//   v8: authorized operations; v9: flexible; v10: topic IDs; v12: lookup by
//   topic ID.

import (
	"context"
	"errors"
	"fmt"
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

	autoCreate := (r.Version < 4 || r.AllowAutoTopicCreation) && c.b.cfg.AutoCreateTopicsEnable

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
		switch {
		case rt.Topic == nil:
			mt.ErrorCode = kerr.UnknownTopicID.Code
		case validateTopicName(*rt.Topic) != nil:
			mt.ErrorCode = kerr.InvalidTopicException.Code
		default:
			mt.IsInternal = isInternalTopic(*rt.Topic)
			if autoCreate {
				c.b.startAutoCreate(*rt.Topic)
			}
		}
		mt.AuthorizedOperations = authorizedOperationsOmitted
		resp.Topics = append(resp.Topics, mt)
	}
	return now(resp), nil
}

// startAutoCreate creates the topic in the background unless its creation
// is already under way here. It does not wait: the Metadata response that
// asked for the topic answers it as unknown, as Kafka's does.
func (b *Broker) startAutoCreate(name string) {
	if _, busy := b.autoCreating.LoadOrStore(name, struct{}{}); busy {
		return
	}
	go func() {
		defer b.autoCreating.Delete(name)
		b.autoCreate(name)
	}()
}

// autoCreate creates a topic as Kafka's auto-creation does: on this broker
// when it is the controller, else through a CreateTopics forwarded to the
// controller. It returns once this broker's metadata shows the topic, or
// the creation failed (logged) or timed out.
func (b *Broker) autoCreate(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	tr := b.autoCreateRequest(name)
	var err error
	if b.awaitController(ctx) == nil {
		err = b.autoCreateOnController(ctx, tr)
	} else {
		spec, states, terr := b.planTopic(b.view.Image(), tr)
		if terr == nil {
			terr = b.createTopic(ctx, spec, states)
		}
		if terr != nil && terr.err != kerr.TopicAlreadyExists {
			err = terr
		}
	}
	if err != nil && b.ctx.Err() == nil {
		if it, internal := b.internalTopic(name); internal && errors.Is(err, kerr.InvalidReplicationFactor) {
			err = fmt.Errorf("%w (%s is %d; set it to at most the number of brokers)", err, it.rfKey, it.rf)
		}
		// Clients retry while the topic cannot be created: one line,
		// then at most one a minute.
		b.repeats.Warn("auto-create "+name, "cannot auto-create topic yet", "topic", name, "err", err)
	}
}

// autoCreateRequest is what auto-creation asks for (Kafka's
// AutoTopicCreationManager.creatableTopic): an internal topic with its
// coordinator's partitions, replication factor and configs, any other with
// this broker's num.partitions and default.replication.factor.
func (b *Broker) autoCreateRequest(name string) topicRequest {
	it, internal := b.internalTopic(name)
	if !internal {
		return topicRequest{name: name, partitions: b.cfg.NumPartitions, rf: int16(b.cfg.DefaultReplicationFactor)}
	}
	return topicRequest{name: it.name, partitions: it.partitions, rf: it.rf, configs: it.configs}
}

// internalTopic is the spec of __consumer_offsets or __transaction_state.
func (b *Broker) internalTopic(name string) (internalTopic, bool) {
	switch {
	case name == offsetsTopic && b.groups != nil:
		return b.groups.topic(), true
	case name == transactionTopic && b.txns != nil:
		return b.txns.topic(), true
	}
	return internalTopic{}, false
}

// autoCreateOnController has the controller create the topic, as a Kafka
// 4.x broker forwards auto-creation, then waits for this broker's metadata
// to show it, so the topic stays in flight (see autoCreating) until then.
func (b *Broker) autoCreateOnController(ctx context.Context, tr topicRequest) error {
	id := b.view.Image().ControllerID
	if id < 0 || id == b.nodeID || b.interBroker == nil {
		return fmt.Errorf("no controller to forward to (controller %d)", id)
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = tr.name, tr.partitions, tr.rf
	for k, v := range tr.configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	resp, err := b.interBroker.forward(ctx, id, req)
	if err != nil {
		return fmt.Errorf("controller %d unreachable: %w", id, err)
	}
	cr := resp.(*kmsg.CreateTopicsResponse)
	if len(cr.Topics) != 1 {
		return fmt.Errorf("controller %d answered %d topics for one", id, len(cr.Topics))
	}
	if code := cr.Topics[0].ErrorCode; code != 0 && code != kerr.TopicAlreadyExists.Code {
		return fmt.Errorf("controller %d: %w", id, kerr.ErrorForCode(code))
	}
	for b.view.Image().Topics[tr.name] == nil {
		select {
		case <-ctx.Done():
			return nil // created; this broker will see it shortly
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
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

// topicMetadata describes a topic's partitions as Kafka's
// KRaftMetadataCache.getPartitionMetadata does for a client on c's
// listener. A replica counts as available when its broker is alive and
// advertises that listener; the others are offline replicas. A leader that
// is not available answers leader -1 (its epoch kept) with
// LEADER_NOT_AVAILABLE when it is not a live broker, and when it is one
// without the listener LISTENER_NOT_FOUND from v6 (LEADER_NOT_AVAILABLE
// below). v0 lists only the available replicas and ISR members and, when
// the leader is available but some replica is not, answers
// REPLICA_NOT_AVAILABLE; later versions list them all.
func topicMetadata(c *conn, img *etcd.Image, t *etcd.Topic, version int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = isInternalTopic(t.Name)
	mt.AuthorizedOperations = authorizedOperationsOmitted
	available := func(id int32) bool {
		info, alive := img.Brokers[id]
		if !alive {
			return false
		}
		_, ok := c.b.advertisedEndpoint(info, c.listener)
		return ok
	}
	listed := func(ids []int32) []int32 {
		if version > 0 {
			return ids
		}
		out := []int32{}
		for _, id := range ids {
			if available(id) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.ID
		mp.Leader = p.State.Leader
		mp.LeaderEpoch = p.State.LeaderEpoch
		mp.Replicas = listed(p.Replicas)
		mp.ISR = listed(p.State.ISR)
		for _, r := range p.Replicas {
			if !available(r) {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		switch _, alive := img.Brokers[p.State.Leader]; {
		case !alive:
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		case !available(p.State.Leader):
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			if version >= 6 {
				mp.ErrorCode = kerr.ListenerNotFound.Code
			}
			mp.Leader = -1
		case len(mp.Replicas) < len(p.Replicas) || len(mp.ISR) < len(p.State.ISR):
			mp.ErrorCode = kerr.ReplicaNotAvailable.Code // v0 only: later versions list them all
		}
		if mp.ISR == nil {
			mp.ISR = []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

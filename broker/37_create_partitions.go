package broker

// CreatePartitions: v0-3
//
// Behavior:
// * Served by the controller; other brokers forward it there (KIP-590),
//   retrying until timeout_ms (at most 60 s) while no controller answers,
//   then REQUEST_TIMED_OUT for every topic (forwardIfNotController).
// * The count must exceed the current one (INVALID_PARTITIONS); explicit
//   assignments, when given, list replicas for each new partition only,
//   checked as CreateTopics checks them (registered brokers, none twice,
//   the topic's replication factor, one replica not shutting down).
// * validate_only checks everything and changes nothing.
//
// Version notes:
// * v2: flexible.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleCreatePartitions(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.CreatePartitionsRequest)
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := c.b.adminContext(r.TimeoutMillis)
	defer cancel()
	if fwd, ok := c.forwardIfNotController(ctx, hdr, r, func(e *kerr.Error) kmsg.Response { return createPartitionsFailed(r, e) }); ok {
		return now(fwd), nil
	}

	repeated := repeatedNames(r.Topics, func(rt kmsg.CreatePartitionsRequestTopic) string { return rt.Topic })
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var terr *topicError
		if repeated[rt.Topic] {
			terr = topicErr(kerr.InvalidRequest, "Duplicate topic in request.")
		} else {
			terr = c.b.addPartitions(ctx, rt, r.ValidateOnly)
		}
		if terr != nil {
			st.ErrorCode = terr.err.Code
			st.ErrorMessage = kmsg.StringPtr(terr.msg)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

// createPartitionsFailed answers every topic of r with e and no message,
// as Kafka's CreatePartitionsRequest.getErrorResponse does.
func createPartitionsFailed(r *kmsg.CreatePartitionsRequest, e *kerr.Error) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic, st.ErrorCode = rt.Topic, e.Code
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) addPartitions(ctx context.Context, rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) *topicError {
	ctl := b.controller.Load() // settled by forwardIfNotController
	if ctl == nil {
		return topicErr(kerr.NotController, "This broker is not the controller.")
	}
	img := b.view.Image()
	t := img.Topics[rt.Topic]
	if t == nil {
		return topicErr(kerr.UnknownTopicOrPartition, "The topic '%s' does not exist.", rt.Topic)
	}
	current := int32(len(t.Partitions))
	if rt.Count < current {
		return topicErr(kerr.InvalidPartitions, "Topic currently has %d partitions, which is higher than the requested %d.", current, rt.Count)
	}
	if rt.Count == current {
		return topicErr(kerr.InvalidPartitions, "Topic already has %d partitions.", current)
	}
	added := int(rt.Count - current)
	rf := len(t.Partitions[0].Replicas)
	brokers := liveBrokerIDs(img)
	var assignment [][]int32
	if rt.Assignment != nil {
		if len(rt.Assignment) != added {
			return topicErr(kerr.InvalidReplicaAssignment, "Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", added, len(rt.Assignment))
		}
		for i, a := range rt.Assignment {
			if terr := checkReplicaAssignment(img, int(current)+i, a.Replicas, rf); terr != nil {
				return terr
			}
			assignment = append(assignment, a.Replicas)
		}
	} else {
		if rf > len(brokers) {
			return topicErr(kerr.InvalidReplicationFactor, "Replication factor: %d larger than available brokers: %d.", rf, len(brokers))
		}
		assignment = assignReplicasFor(img, brokers, added, rf, int(current))
	}
	if validateOnly {
		return nil
	}
	rev, err := ctl.AddPartitions(ctx, t.Name, assignment, initialStates(img, assignment))
	switch {
	case errors.Is(err, etcd.ErrNotController):
		return topicErr(kerr.NotController, "This broker is no longer the controller.")
	case errors.Is(err, etcd.ErrUnknownTopic):
		return topicErr(kerr.UnknownTopicOrPartition, "The topic '%s' does not exist.", rt.Topic)
	case err != nil:
		b.logger.Error("add partitions in etcd", "topic", t.Name, "err", err)
		return topicErr(kerr.UnknownServerError, "%v", fmt.Errorf("could not store the partitions: %w", err))
	}
	if err := b.view.WaitForRevision(ctx, rev); err != nil {
		return topicErr(kerr.RequestTimedOut, "partitions created but not yet visible: %v", err)
	}
	b.logger.Info("added partitions", "topic", t.Name, "partitions", rt.Count)
	return nil
}

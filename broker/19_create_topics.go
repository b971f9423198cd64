package broker

// CreateTopics: v2-7
//
// Behavior:
// * Served by the controller; other brokers forward it there (KIP-590),
//   retrying until timeout_ms (at most 60 s) while no controller answers,
//   then REQUEST_TIMED_OUT for every topic (forwardIfNotController).
// * num_partitions / replication_factor of -1 take the broker defaults
//   (KIP-464); explicit replica assignments exclude both.
// * Topic configs are validated (INVALID_CONFIG; a null value too) and
//   stored with the topic.
// * validate_only checks everything and creates nothing.
// * A name given twice in one request fails for each occurrence.
// * Checks run in the order of Kafka's controller: the name (invalid, or
//   colliding with an existing topic on '.' versus '_':
//   INVALID_TOPIC_EXCEPTION), existence, configs, then counts and the
//   explicit assignment. An assignment may name a broker in controlled
//   shutdown as long as one of the partition's replicas is not.
//
// Version notes:
// * v5: the response carries partitions, replication factor and configs;
//   v5 flexible; v7: topic ID.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

func handleCreateTopics(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.CreateTopicsRequest)
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := c.b.adminContext(r.TimeoutMillis)
	defer cancel()
	if fwd, ok := c.forwardIfNotController(ctx, hdr, r, func(e *kerr.Error) kmsg.Response { return createTopicsFailed(r, e) }); ok {
		return now(fwd), nil
	}

	repeated := repeatedNames(r.Topics, func(rt kmsg.CreateTopicsRequestTopic) string { return rt.Topic })
	// Every topic is checked against the topics that existed before the
	// request, as Kafka's controller checks one request against its state:
	// two new names that collide on '.' versus '_' are both created.
	img := c.b.view.Image()
	for _, rt := range r.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(e *topicError) {
			st.ErrorCode = e.err.Code
			st.ErrorMessage = kmsg.StringPtr(e.msg)
		}
		if repeated[rt.Topic] {
			fail(topicErr(kerr.InvalidRequest, "Create topics request from client `%s` contains multiple entries for the following topics: %s", hdr.clientID, rt.Topic))
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if c.b.controller.Load() == nil { // settled by forwardIfNotController
			fail(topicErr(kerr.NotController, "This broker is not the controller."))
			resp.Topics = append(resp.Topics, st)
			continue
		}
		tr := topicRequest{name: rt.Topic, partitions: rt.NumPartitions, rf: rt.ReplicationFactor, configs: map[string]string{}}
		for _, cfg := range rt.Configs {
			if cfg.Value != nil {
				tr.configs[cfg.Name] = *cfg.Value
			} else {
				tr.nullConfigs = append(tr.nullConfigs, cfg.Name)
			}
		}
		if len(rt.ReplicaAssignment) > 0 {
			tr.assignment = make([][]int32, len(rt.ReplicaAssignment))
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(tr.assignment) || tr.assignment[a.Partition] != nil {
					tr.assignment = nil
					tr.assignmentErr = topicErr(kerr.InvalidReplicaAssignment, "Partitions should be a consecutive 0-based integer sequence, each listed once.")
					break
				}
				tr.assignment[a.Partition] = a.Replicas
			}
		}
		spec, states, terr := c.b.planTopic(img, tr)
		if terr == nil && !r.ValidateOnly {
			terr = c.b.createTopic(ctx, spec, states)
		}
		if terr != nil {
			fail(terr)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if !r.ValidateOnly {
			st.TopicID = spec.ID
		}
		st.NumPartitions = int32(len(spec.Replicas))
		st.ReplicationFactor = int16(len(spec.Replicas[0]))
		st.Configs = describedTopicConfigs(c.b.cfg, tr.configs)
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

// createTopicsFailed answers every topic of r with e and no message, as
// Kafka's CreateTopicsRequest.getErrorResponse does.
func createTopicsFailed(r *kmsg.CreateTopicsRequest, e *kerr.Error) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic, st.ErrorCode = rt.Topic, e.Code
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// Kafka's config sources, as DescribeConfigs reports them.
const (
	configSourceDynamicTopic = 1
	configSourceDefault      = 5
)

// describedTopicConfigs lists a topic's effective configs: its overrides and
// the broker's defaults for everything else.
func describedTopicConfigs(cfg *config.Config, overrides map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	all := cfg.TopicDefaults()
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	for k := range overrides {
		if _, ok := all[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(keys))
	for _, k := range keys {
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name = k
		v, ok := overrides[k]
		rc.Source = configSourceDynamicTopic
		if !ok {
			v = all[k]
			rc.Source = configSourceDefault
		}
		rc.Value = kmsg.StringPtr(v)
		out = append(out, rc)
	}
	return out
}

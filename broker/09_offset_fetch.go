package broker

// OffsetFetch: v1-10
//
// Behavior:
// * A group with no commits (or no group at all) answers offset -1 and no
//   error for each partition, as Kafka does; a null topic list (v2+) means
//   every committed partition.
// * v8+ fetches several groups at once, each routed to its shard.
// * require_stable is accepted; until transactions exist nothing is
//   pending, so UNSTABLE_OFFSET_COMMIT is never answered.
// * v10 names topics by ID: an ID this broker does not know (the zero ID
//   included) never reaches the coordinator; its partitions answer
//   UNKNOWN_TOPIC_ID with offset -1, after the coordinator's topics and
//   only when the group itself has no error, as Kafka 4.1's KafkaApis
//   (fetchOffsetsForGroup) does.
//
// Version notes:
// * v2: top-level error, all topics; v5: leader epoch; v6: flexible;
//   v7: require stable; v8: batched groups; v9: member ID and epoch;
//   v10: topic IDs.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleOffsetFetch(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.OffsetFetchRequest)
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	img := c.b.view.Image()

	fetchGroup := func(g kmsg.OffsetFetchRequestGroup) kmsg.OffsetFetchResponseGroup {
		var unknownIDs []kmsg.OffsetFetchResponseGroupTopic
		if r.Version >= 10 && g.Topics != nil {
			g.Topics, unknownIDs = resolveTopicIDs(img, g.Topics)
		}
		shard, kerrErr := c.b.groups.shardFor(ctx, g.Group)
		var out kmsg.OffsetFetchResponseGroup
		if kerrErr != nil {
			out = kmsg.NewOffsetFetchResponseGroup()
			out.Group, out.ErrorCode = g.Group, kerrErr.Code
		} else {
			out = shard.OffsetFetch(ctx, g, r.RequireStable)
		}
		if r.Version >= 10 {
			fillTopicIDs(img, out.Topics)
			if out.ErrorCode == 0 {
				out.Topics = append(out.Topics, unknownIDs...)
			}
		}
		return out
	}

	if r.Version >= 8 {
		for _, g := range r.Groups {
			resp.Groups = append(resp.Groups, fetchGroup(g))
		}
		return now(resp), nil
	}

	// v1-v7: one group; adapt to the batched shape and back.
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = r.Group
	if r.Topics != nil {
		g.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
		for _, t := range r.Topics {
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = t.Topic, t.Partitions
			g.Topics = append(g.Topics, gt)
		}
	}
	out := fetchGroup(g)
	resp.ErrorCode = out.ErrorCode
	for _, t := range out.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if r.Version < 2 && out.ErrorCode != 0 {
		// v1 has no top-level error: every requested partition carries it.
		resp.Topics = nil
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, out.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	return now(resp), nil
}

// resolveTopicIDs names the topics of a v10 request by their IDs. Those
// whose ID names no topic are split off, answered UNKNOWN_TOPIC_ID for
// every partition asked (offset -1, the ID echoed); known keeps the
// request's order and is never nil, so an all-unknown request still asks
// the coordinator for no topics rather than all of them.
func resolveTopicIDs(img *etcd.Image, topics []kmsg.OffsetFetchRequestGroupTopic) (known []kmsg.OffsetFetchRequestGroupTopic, unknown []kmsg.OffsetFetchResponseGroupTopic) {
	known = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(topics))
	for _, rt := range topics {
		if t := img.TopicsByID[rt.TopicID]; t != nil {
			rt.Topic = t.Name
			known = append(known, rt)
			continue
		}
		ut := kmsg.NewOffsetFetchResponseGroupTopic()
		ut.TopicID = rt.TopicID
		for _, p := range rt.Partitions {
			up := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			up.Partition, up.Offset, up.Metadata = p, -1, kmsg.StringPtr("")
			up.ErrorCode = kerr.UnknownTopicID.Code
			ut.Partitions = append(ut.Partitions, up)
		}
		unknown = append(unknown, ut)
	}
	return known, unknown
}

func fillTopicIDs(img *etcd.Image, topics []kmsg.OffsetFetchResponseGroupTopic) {
	for i := range topics {
		if t := img.Topics[topics[i].Topic]; t != nil {
			topics[i].TopicID = t.ID
		}
	}
}

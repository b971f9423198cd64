package broker

// OffsetCommit: v2-10
//
// Behavior:
// * Routed to the group's coordinator shard: generation and member checks,
//   simple commits from non-members (generation -1), metadata size limit;
//   offsets are durable in __consumer_offsets before the response.
// * Partitions of unknown topics answer UNKNOWN_TOPIC_OR_PARTITION.
//
// Version notes:
// * v5: no retention time; v6: leader epoch; v7: group instance ID;
//   v8: flexible; v10: topic IDs.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetCommit(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.OffsetCommitRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	img := c.b.view.Image()

	// Resolve topic IDs (v10) to names, and split off unknown partitions.
	unknown := map[int]map[int32]int16{} // topic index → partition → error
	known := *r
	known.Topics = nil
	for i, rt := range r.Topics {
		name := rt.Topic
		if r.Version >= 10 {
			name = ""
			if t := img.TopicsByID[rt.TopicID]; t != nil {
				name = t.Name
			}
		}
		t := img.Topics[name]
		kt := rt
		kt.Topic = name
		kt.Partitions = nil
		for _, rp := range rt.Partitions {
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				if unknown[i] == nil {
					unknown[i] = map[int32]int16{}
				}
				code := kerr.UnknownTopicOrPartition.Code
				if r.Version >= 10 && t == nil {
					code = kerr.UnknownTopicID.Code
				}
				unknown[i][rp.Partition] = code
				continue
			}
			kt.Partitions = append(kt.Partitions, rp)
		}
		if len(kt.Partitions) > 0 {
			known.Topics = append(known.Topics, kt)
		}
	}

	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	var got *kmsg.OffsetCommitResponse
	var failCode int16
	if len(known.Topics) > 0 {
		shard, kerrErr := c.b.groups.shardFor(ctx, r.Group)
		if kerrErr != nil {
			failCode = kerrErr.Code
		} else {
			got = shard.OffsetCommit(ctx, &known)
		}
	}
	// Answer every requested partition in request order.
	codeOf := func(topic string, partition int32) int16 {
		if got == nil {
			return failCode
		}
		for _, t := range got.Topics {
			if t.Topic != topic {
				continue
			}
			for _, p := range t.Partitions {
				if p.Partition == partition {
					return p.ErrorCode
				}
			}
		}
		return kerr.UnknownServerError.Code
	}
	for i, rt := range r.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		if r.Version >= 10 {
			if t := img.TopicsByID[rt.TopicID]; t != nil {
				name = t.Name
			}
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			if code, ok := unknown[i][rp.Partition]; ok {
				sp.ErrorCode = code
			} else {
				sp.ErrorCode = codeOf(name, rp.Partition)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

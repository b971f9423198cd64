package broker

// OffsetForLeaderEpoch: v2-4
//
// Behavior:
// * For each partition led here: the largest epoch at or below the asked
//   one and the offset where it ended (the log end offset for the current
//   epoch), so a consumer or follower can detect and cut a divergent log
//   (KIP-101, KIP-320). UNDEFINED_EPOCH_OFFSET (-1, -1) when unknown.
// * A stale current leader epoch is FENCED_LEADER_EPOCH, a newer one
//   UNKNOWN_LEADER_EPOCH.
//
// Version notes:
// * v2: current leader epoch; v3: replica ID; v4: flexible.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetForLeaderEpoch(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.OffsetForLeaderEpochRequest)
	resp := r.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			p, code := c.b.leaderOrCode(rt.Topic, rp.Partition)
			if code == 0 {
				code = fenceLeaderEpoch(p, rp.CurrentLeaderEpoch)
			}
			if code == 0 {
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

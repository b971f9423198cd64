package broker

// WriteTxnMarkers: v0-2
//
// Behavior:
// * Sent by a transaction coordinator to partition leaders: appends a
//   commit or abort control batch per partition. Partitions not led here
//   answer NOT_LEADER_OR_FOLLOWER; fenced coordinator epochs
//   TRANSACTION_COORDINATOR_FENCED.
//
// Version notes:
// * v1: flexible; v2: transaction version.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleWriteTxnMarkers(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.WriteTxnMarkersRequest)
	resp := r.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range r.Markers {
		out := kmsg.NewWriteTxnMarkersResponseMarker()
		out.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				err := c.b.writeMarker(t.Topic, p, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch)
				rp.ErrorCode = c.b.partitionErrorCode(err, "write transaction marker", t.Topic, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
		resp.Markers = append(resp.Markers, out)
	}
	return now(resp), nil
}

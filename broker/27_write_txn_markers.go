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
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
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
				var ke *kerr.Error
				switch {
				case err == nil:
				case errors.As(err, &ke):
					rp.ErrorCode = ke.Code
				case errors.Is(err, errMarkerNotLeader):
					rp.ErrorCode = kerr.NotLeaderForPartition.Code
				default:
					c.b.logger.Error("write transaction marker", "topic", t.Topic, "partition", p, "err", err)
					rp.ErrorCode = kerr.KafkaStorageError.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
		resp.Markers = append(resp.Markers, out)
	}
	return now(resp), nil
}

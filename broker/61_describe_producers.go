package broker

// DescribeProducers: v0
//
// Behavior:
// * Lists the active idempotent and transactional producers of each
//   partition this broker leads: epoch, last sequence and timestamp,
//   coordinator epoch, and the start offset of an open transaction.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeProducers(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeProducersRequest)
	resp := r.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, pi := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = pi
			p, err := c.b.partitions.leaderFor(t.Topic, pi)
			switch {
			case errors.Is(err, errUnknownPartition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case err != nil:
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				for _, ap := range p.ActiveProducers() {
					out := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
					out.ProducerID = ap.ProducerID
					out.ProducerEpoch = int32(ap.ProducerEpoch)
					out.LastSequence = ap.LastSequence
					out.LastTimestamp = ap.LastTimestamp
					out.CoordinatorEpoch = ap.CoordinatorEpoch
					out.CurrentTxnStartOffset = ap.CurrentTxnStartOffset
					rp.ActiveProducers = append(rp.ActiveProducers, out)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return now(resp), nil
}

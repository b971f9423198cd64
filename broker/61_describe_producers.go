package broker

// DescribeProducers: v0
//
// Behavior:
// * Lists the active idempotent and transactional producers of each
//   partition this broker holds a replica of, leader or follower (Kafka's
//   ReplicaManager.activeProducerState reads the local log): epoch, last
//   sequence and timestamp, coordinator epoch, and the start offset of an
//   open transaction.
// * A partition this broker holds no replica of is NOT_LEADER_OR_FOLLOWER,
//   an unknown one UNKNOWN_TOPIC_OR_PARTITION, one in an offline log dir
//   KAFKA_STORAGE_ERROR.

import (
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
			p, err := c.b.partitions.hosted(t.Topic, pi)
			if err != nil {
				rp.ErrorCode = c.b.partitionErrorCode(err, "describe producers", t.Topic, pi)
			} else {
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

package broker

// ListOffsets: v1-11
//
// Behavior:
// * -2 earliest (log start offset), -1 latest (high watermark; the last
//   stable offset under read_committed, which also bounds the others), -3 the record with the largest
//   timestamp (v7+), -4 earliest local (v8+, the log start offset without
//   tiered storage), -5 earliest pending upload (v9+, none: offset -1).
// * A timestamp finds the first record at or after it, through the time
//   index, exact to the record (batches are decompressed as needed).
// * A stale or future current leader epoch is fenced (v4+).
// * A new leader whose high watermark has not reached the start of its
//   epoch answers consumers OFFSET_NOT_AVAILABLE for latest, and for a
//   timestamp or max-timestamp lookup that found nothing, so they retry
//   rather than see the end go backwards; below v5, which introduced
//   OFFSET_NOT_AVAILABLE, LEADER_NOT_AVAILABLE (as Kafka's ReplicaManager).
//
// Version notes:
// * v2: isolation level; v4: leader epochs; v5: OFFSET_NOT_AVAILABLE;
//   v6: flexible; v7: max timestamp; v10: timeout.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/storage"
)

func handleListOffsets(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ListOffsetsRequest)
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			p, code := c.b.leaderOrCode(rt.Topic, rp.Partition)
			if code == 0 {
				code = listOffset(c, p, rp, r.IsolationLevel == 1, r.ReplicaID == -1, &sp)
			}
			if code == kerr.OffsetNotAvailable.Code && r.Version < 5 {
				code = kerr.LeaderNotAvailable.Code
			}
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

func listOffset(c *conn, p *replica.Partition, rp kmsg.ListOffsetsRequestTopicPartition, readCommitted, fromConsumer bool, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	if code := fenceLeaderEpoch(p, rp.CurrentLeaderEpoch); code != 0 {
		return code
	}
	// A new leader whose high watermark has not reached its epoch's start
	// cannot say where the committed log ends yet.
	notYet := fromConsumer && p.HighWatermarkBehindEpoch()
	switch rp.Timestamp {
	case -2, -4: // earliest, earliest local
		sp.Offset = p.LogStartOffset()
	case -1: // latest: the HW, or the LSO under read_committed
		if notYet {
			return kerr.OffsetNotAvailable.Code
		}
		sp.Offset = p.FetchableEnd(readCommitted)
		sp.LeaderEpoch = p.LeaderEpoch()
		return 0
	case -3: // max timestamp
		off, ts := p.MaxTimestamp()
		if off < 0 || off >= p.FetchableEnd(readCommitted) {
			if notYet {
				return kerr.OffsetNotAvailable.Code
			}
			return 0
		}
		sp.Offset, sp.Timestamp = off, ts
	case -5: // earliest pending upload: no tiered storage, nothing pending
		return 0
	default:
		if rp.Timestamp < 0 {
			return kerr.InvalidRequest.Code
		}
		off, ts, ok, err := p.OffsetForTimestamp(rp.Timestamp, readCommitted)
		if err != nil {
			return c.b.partitionErrorCode(err, "list offsets by timestamp", p.Topic, p.Index)
		}
		if !ok {
			if notYet {
				return kerr.OffsetNotAvailable.Code
			}
			return 0
		}
		sp.Offset, sp.Timestamp = off, ts
	}
	sp.LeaderEpoch = epochForOffset(p.EpochEntries(), sp.Offset)
	return 0
}

// epochForOffset is the leader epoch whose range holds offset.
func epochForOffset(entries []storage.EpochEntry, offset int64) int32 {
	epoch := int32(-1)
	for _, e := range entries {
		if e.StartOffset > offset {
			break
		}
		epoch = e.Epoch
	}
	return epoch
}

package broker

// ListOffsets: v1-11
//
// Behavior:
// * -2 earliest (log start offset), -1 latest (high watermark; the last
//   stable offset under read_committed, which also bounds the others), -3
//   the record with the largest timestamp (v7+), -4 earliest local (v8+,
//   the log start offset without tiered storage), -5 latest tiered (v9+,
//   KIP-1005) and -6 earliest pending upload (v11+, KIP-1023), both offset
//   -1 without tiered storage. A special timestamp below the version that
//   introduced it, or any other negative timestamp, is UNSUPPORTED_VERSION
//   (Kafka's ReplicaManager.isListOffsetsTimestampUnsupported).
// * A timestamp finds the first record at or after it, through the time
//   index, exact to the record (batches are decompressed as needed).
// * A partition named twice in one request is INVALID_REQUEST, answered
//   once: Kafka's response holds one entry per partition (and one per
//   topic), checked before anything else.
// * replica_id -2 (the debugging consumer) is served by any replica, the
//   leader or a follower, as Kafka's fetchOnlyFromLeader=false. Requests
//   from anything but a consumer (replica_id not -1) ignore the isolation
//   level and see up to the log end offset rather than the high watermark,
//   as Kafka's; a lookup by timestamp still stops at the high watermark.
// * A stale or future current leader epoch is fenced (v4+).
// * A new leader whose high watermark has not reached the start of its
//   epoch answers consumers OFFSET_NOT_AVAILABLE for latest, and for a
//   timestamp or max-timestamp lookup that found nothing, so they retry
//   rather than see the end go backwards; below v5, which introduced
//   OFFSET_NOT_AVAILABLE, LEADER_NOT_AVAILABLE (as Kafka's ReplicaManager).
//
// Version notes:
// * v2: isolation level; v4: leader epochs; v5: OFFSET_NOT_AVAILABLE;
//   v6: flexible; v7: max timestamp; v8: earliest local; v9: latest tiered;
//   v10: timeout; v11: earliest pending upload.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/storage"
)

// consumerReplicaID is Kafka's ListOffsetsRequest.CONSUMER_REPLICA_ID; its
// DEBUGGING_REPLICA_ID, which may read any replica, is Fetch's
// debuggingReplicaID (-2).
const consumerReplicaID = -1

func handleListOffsets(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ListOffsetsRequest)
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	fromConsumer := r.ReplicaID == consumerReplicaID
	dups := duplicatePartitions(r.Topics)
	topicAt := map[string]int{} // a topic's place in resp.Topics
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			answered, dup := dups[tp]
			if answered {
				continue
			}
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			var code int16
			switch {
			case dup:
				code = kerr.InvalidRequest.Code
				dups[tp] = true
			case !timestampSupported(rp.Timestamp, r.Version):
				code = kerr.UnsupportedVersion.Code
			default:
				p, err := c.b.partitions.readableFor(rt.Topic, rp.Partition, r.ReplicaID == debuggingReplicaID)
				if err != nil {
					code = c.b.partitionErrorCode(err, "list offsets", rt.Topic, rp.Partition)
				} else {
					code = listOffset(c, p, rp, fromConsumer, fromConsumer && r.IsolationLevel == 1, &sp)
				}
			}
			if code == kerr.OffsetNotAvailable.Code && r.Version < 5 {
				code = kerr.LeaderNotAvailable.Code
			}
			sp.ErrorCode = code
			ti, ok := topicAt[rt.Topic]
			if !ok {
				ti = len(resp.Topics)
				topicAt[rt.Topic] = ti
				st := kmsg.NewListOffsetsResponseTopic()
				st.Topic = rt.Topic
				resp.Topics = append(resp.Topics, st)
			}
			resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, sp)
		}
	}
	return now(resp), nil
}

// duplicatePartitions maps every partition named more than once in the
// request to false (not yet answered); Kafka's ListOffsetsRequest
// collects them as duplicatePartitions.
func duplicatePartitions(topics []kmsg.ListOffsetsRequestTopic) map[topicPartition]bool {
	var dups map[topicPartition]bool
	seen := map[topicPartition]struct{}{}
	for _, rt := range topics {
		for _, rp := range rt.Partitions {
			tp := topicPartition{rt.Topic, rp.Partition}
			if _, ok := seen[tp]; !ok {
				seen[tp] = struct{}{}
				continue
			}
			if dups == nil {
				dups = map[topicPartition]bool{}
			}
			dups[tp] = false
		}
	}
	return dups
}

// timestampSupported reports whether a ListOffsets request at version may
// ask for timestamp: any non-negative time, and each special (negative)
// timestamp from the version that introduced it (Kafka's
// ReplicaManager.timestampMinSupportedVersion).
func timestampSupported(timestamp int64, version int16) bool {
	var since int16
	switch timestamp {
	case -1, -2: // latest, earliest
		return true
	case -3: // max timestamp, KIP-734
		since = 7
	case -4: // earliest local, KIP-405
		since = 8
	case -5: // latest tiered, KIP-1005
		since = 9
	case -6: // earliest pending upload, KIP-1023
		since = 11
	default:
		return timestamp >= 0
	}
	return version >= since
}

// listOffset answers one partition. fromConsumer is Kafka's
// isClientRequest: a consumer sees up to the high watermark (the last
// stable offset with readCommitted) and may be told OFFSET_NOT_AVAILABLE;
// anything else sees up to the log end.
func listOffset(c *conn, p *replica.Partition, rp kmsg.ListOffsetsRequestTopicPartition, fromConsumer, readCommitted bool, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	if code := fenceLeaderEpoch(p, rp.CurrentLeaderEpoch); code != 0 {
		return code
	}
	end := p.LogEndOffset()
	if fromConsumer {
		end = p.FetchableEnd(readCommitted)
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
		sp.Offset = end
		sp.LeaderEpoch = p.LeaderEpoch()
		return 0
	case -3: // max timestamp
		off, ts := p.MaxTimestamp()
		if off < 0 || off >= end {
			if notYet {
				return kerr.OffsetNotAvailable.Code
			}
			return 0
		}
		sp.Offset, sp.Timestamp = off, ts
	case -5, -6: // latest tiered, earliest pending upload: no tiered storage
		return 0
	default: // a time; timestampSupported refused other negative values
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

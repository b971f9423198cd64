package group

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Record key and value versions Kafka writes (GroupCoordinatorRecordHelpers).
const (
	offsetKeyVersion          = 1
	groupKeyVersion           = 2
	offsetValueVersion        = 3
	offsetValueVersionExpire  = 1 // carries an explicit expire timestamp
	groupMetadataValueVersion = 3
)

func offsetKey(groupID, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: groupID, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetRecord(groupID string, tp topicPartition, o offsetEntry) runtime.Record {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitTimestamp
	if o.expireTimestamp >= 0 {
		v.Version = offsetValueVersionExpire
		v.ExpireTimestamp = o.expireTimestamp
	}
	return runtime.Record{Key: offsetKey(groupID, tp.topic, tp.partition), Value: v.AppendTo(nil)}
}

func offsetTombstone(groupID string, tp topicPartition) runtime.Record {
	return runtime.Record{Key: offsetKey(groupID, tp.topic, tp.partition)}
}

func groupKey(groupID string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: groupID}
	return k.AppendTo(nil)
}

func groupTombstone(groupID string) runtime.Record { return runtime.Record{Key: groupKey(groupID)} }

// groupRecord encodes the group as Kafka's storeGroup does: every member
// with its subscription for the selected protocol and the given
// assignment (missing assignments are empty).
func groupRecord(g *group, assignment func(m *member) []byte) runtime.Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupMetadataValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.Protocol = optString(g.protocol)
	v.Leader = optString(g.leader)
	v.CurrentStateTimestamp = g.stateTime
	for _, id := range g.order {
		m := g.members[id]
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID = m.id
		mv.InstanceID = optString(m.instanceID)
		mv.ClientID = m.clientID
		mv.ClientHost = m.clientHost
		mv.RebalanceTimeoutMillis = m.rebalanceTimeoutMs
		mv.SessionTimeoutMillis = m.sessionTimeoutMs
		mv.Subscription = nonNil(m.metadata(g.protocol))
		mv.Assignment = nonNil(assignment(m))
		v.Members = append(v.Members, mv)
	}
	return runtime.Record{Key: groupKey(g.id), Value: v.AppendTo(nil)}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// replay applies one entry of the log to the shard's durable state: a
// record (at its offset in the log, with the writer's producer ID when it is
// part of a transaction, else -1) or a transaction marker. It is the only
// writer of offsets and stored group metadata, both at load and live.
func (s *Shard) replay(e runtime.Entry) {
	if e.Marker {
		s.replayTxnMarker(e.ProducerID, e.Commit)
		return
	}
	if len(e.Key) < 2 {
		s.logger.Debug("skipping __consumer_offsets record with a short key", "partition", s.partition)
		return
	}
	switch v := int16(binary.BigEndian.Uint16(e.Key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(e.Key); err != nil {
			s.logger.Debug("skipping undecodable offset commit key", "partition", s.partition, "err", err)
			return
		}
		tp := topicPartition{k.Topic, k.Partition}
		if e.Value == nil {
			s.replayOffsetTombstone(k.Group, tp)
			return
		}
		var ov kmsg.OffsetCommitValue
		if err := ov.ReadFrom(e.Value); err != nil {
			s.logger.Warn("skipping undecodable offset commit value", "partition", s.partition, "group", k.Group, "err", err)
			return
		}
		o := offsetEntry{
			recordOffset:    e.Offset,
			offset:          ov.Offset,
			leaderEpoch:     -1,
			metadata:        ov.Metadata,
			commitTimestamp: ov.CommitTimestamp,
			expireTimestamp: -1,
		}
		if ov.Version >= 3 {
			o.leaderEpoch = ov.LeaderEpoch
		}
		if ov.Version == 1 {
			o.expireTimestamp = ov.ExpireTimestamp
		}
		if e.ProducerID >= 0 {
			s.replayTxnOffset(e.ProducerID, k.Group, tp, o)
			return
		}
		s.replayOffset(k.Group, tp, o)
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(e.Key); err != nil {
			s.logger.Debug("skipping undecodable group metadata key", "partition", s.partition, "err", err)
			return
		}
		if e.Value == nil {
			s.replayGroupTombstone(k.Group)
			return
		}
		var gv kmsg.GroupMetadataValue
		if err := gv.ReadFrom(e.Value); err != nil {
			s.logger.Warn("skipping undecodable group metadata value", "partition", s.partition, "group", k.Group, "err", err)
			return
		}
		s.replayGroupMetadata(k.Group, &gv)
	case cgMetadataKey, cgPartitionMetadataKey, cgMemberKey, cgTargetMetadataKey, cgTargetMemberKey, cgCurrentKey:
		s.replayConsumer(v, e.Key, e.Value)
	default:
		s.logger.Debug("skipping __consumer_offsets record of unknown key version", "partition", s.partition, "key_version", v)
	}
}

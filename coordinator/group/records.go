package group

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Record key and value versions Kafka writes (GroupCoordinatorRecordHelpers).
const (
	offsetKeyVersion          = 1
	groupKeyVersion           = 2
	offsetValueVersion        = 3
	offsetValueVersionExpire  = 1 // carries an explicit expire timestamp
	groupMetadataValueVersion = 3
)

// record is one key/value of __consumer_offsets; a nil value is a tombstone.
type record struct {
	key, value []byte
}

// producer identifies who writes a batch. Plain coordinator writes use
// noProducer; transactional offset commits pass the transaction's producer
// ID and epoch with transactional set.
type producer struct {
	id            int64
	epoch         int16
	transactional bool
}

var noProducer = producer{id: -1, epoch: -1}

// buildBatch encodes records as one uncompressed magic-2 batch with base
// offset 0 (the log assigns the real one) and a CRC-32C over attributes to
// the end.
func buildBatch(recs []record, ts int64, p producer) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
		probe := rec.AppendTo(nil) // with Length 0: a one-byte length prefix
		rec.Length = int32(len(probe) - 1)
		body = rec.AppendTo(body)
	}
	var attrs int16
	seq := int32(-1)
	if p.transactional {
		// A coordinator write: sequence -1 tells the log to check the
		// producer's epoch (fencing zombies) but not its sequence, which
		// restarts with every transaction (Kafka appends these with the
		// coordinator origin, to the same effect).
		attrs |= 0x10
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           p.id,
		ProducerEpoch:        p.epoch,
		FirstSequence:        seq,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	return b
}

func offsetKey(groupID, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: groupID, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetRecord(groupID string, tp topicPartition, o offsetEntry) record {
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
	return record{key: offsetKey(groupID, tp.topic, tp.partition), value: v.AppendTo(nil)}
}

func offsetTombstone(groupID string, tp topicPartition) record {
	return record{key: offsetKey(groupID, tp.topic, tp.partition)}
}

func groupKey(groupID string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: groupID}
	return k.AppendTo(nil)
}

func groupTombstone(groupID string) record { return record{key: groupKey(groupID)} }

// groupRecord encodes the group as Kafka's storeGroup does: every member
// with its subscription for the selected protocol and the given
// assignment (missing assignments are empty).
func groupRecord(g *group, assignment func(m *member) []byte) record {
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
	return record{key: groupKey(g.id), value: v.AppendTo(nil)}
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

// decodedRecord is one record read back from the log, or one transaction
// marker (control set).
type decodedRecord struct {
	offset     int64
	producerID int64 // the batch's producer ID if it is transactional, else -1
	key, value []byte
	control    bool // a commit or abort marker of producerID's transaction
	commit     bool
}

// Control record types (the int16 after the key version of a control
// record's key), as Kafka's ControlRecordType numbers them.
const (
	controlAbort  = 0
	controlCommit = 1
)

// decodeBatches splits concatenated batches read from the log, in log order,
// skipping records below from (a read may start inside a batch). Records of
// transactional batches carry the batch's producer ID; a control batch
// yields its commit and abort markers (other control records are skipped).
// It returns the offset after the last complete batch.
func decodeBatches(b []byte, from int64) ([]decodedRecord, int64, error) {
	var out []decodedRecord
	next := from
	for pos := 0; pos < len(b); {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: batch at byte %d: %w", ErrCorruptLog, pos, err)
		}
		size := h.TotalSize()
		if size > len(b)-pos {
			if pos == 0 {
				return nil, 0, fmt.Errorf("%w: batch at offset %d claims %d bytes, read returned %d", ErrCorruptLog, h.BaseOffset, size, len(b))
			}
			break // a trailing partial batch is read again next time
		}
		one := b[pos : pos+size]
		pos += size
		if h.NextOffset() > next {
			next = h.NextOffset()
		}
		pid := int64(-1)
		if h.IsTransactional() {
			pid = h.ProducerID
		}
		err = batch.ForEachRecord(one, func(r batch.Record) bool {
			if r.Offset < from {
				return true
			}
			d := decodedRecord{offset: r.Offset, producerID: pid, key: r.Key, value: r.Value}
			if h.IsControl() {
				if len(r.Key) < 4 {
					return true
				}
				typ := int16(binary.BigEndian.Uint16(r.Key[2:]))
				if typ != controlAbort && typ != controlCommit {
					return true
				}
				d = decodedRecord{offset: r.Offset, producerID: h.ProducerID, control: true, commit: typ == controlCommit}
			}
			out = append(out, d)
			return true
		})
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrCorruptLog, err)
		}
	}
	return out, next, nil
}

// replayDecoded applies one record or marker read back from the log.
func (s *Shard) replayDecoded(r decodedRecord) {
	if r.control {
		s.replayTxnMarker(r.producerID, r.commit)
		return
	}
	s.replay(r.offset, r.producerID, r.key, r.value)
}

// replay applies one record to the shard's durable state. It is the only
// writer of offsets and stored group metadata, both at load and live. off
// is the record's offset in the log; producerID is the writer's producer ID
// when the record is part of a transaction, else -1.
func (s *Shard) replay(off, producerID int64, key, value []byte) {
	if len(key) < 2 {
		s.logger.Debug("skipping __consumer_offsets record with a short key", "partition", s.partition)
		return
	}
	switch v := int16(binary.BigEndian.Uint16(key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			s.logger.Debug("skipping undecodable offset commit key", "partition", s.partition, "err", err)
			return
		}
		tp := topicPartition{k.Topic, k.Partition}
		if value == nil {
			s.replayOffsetTombstone(k.Group, tp)
			return
		}
		var ov kmsg.OffsetCommitValue
		if err := ov.ReadFrom(value); err != nil {
			s.logger.Warn("skipping undecodable offset commit value", "partition", s.partition, "group", k.Group, "err", err)
			return
		}
		o := offsetEntry{
			recordOffset:    off,
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
		if producerID >= 0 {
			s.replayTxnOffset(producerID, k.Group, tp, o)
			return
		}
		s.replayOffset(k.Group, tp, o)
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			s.logger.Debug("skipping undecodable group metadata key", "partition", s.partition, "err", err)
			return
		}
		if value == nil {
			s.replayGroupTombstone(k.Group)
			return
		}
		var gv kmsg.GroupMetadataValue
		if err := gv.ReadFrom(value); err != nil {
			s.logger.Warn("skipping undecodable group metadata value", "partition", s.partition, "group", k.Group, "err", err)
			return
		}
		s.replayGroupMetadata(k.Group, &gv)
	case cgMetadataKey, cgPartitionMetadataKey, cgMemberKey, cgTargetMetadataKey, cgTargetMemberKey, cgCurrentKey:
		s.replayConsumer(v, key, value)
	default:
		s.logger.Debug("skipping __consumer_offsets record of unknown key version", "partition", s.partition, "key_version", v)
	}
}

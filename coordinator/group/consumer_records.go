package group

import (
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kbin"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// KIP-848 record keys of __consumer_offsets (Kafka's coordinator record
// types 3-8). kmsg does not define them; they are encoded here per Kafka's
// group-coordinator JSON schemas. See the package doc for the layouts.
const (
	cgMetadataKey          = 3 // ConsumerGroupMetadata: group epoch
	cgPartitionMetadataKey = 4 // ConsumerGroupPartitionMetadata: subscribed topics
	cgMemberKey            = 5 // ConsumerGroupMemberMetadata: a member's subscription
	cgTargetMetadataKey    = 6 // ConsumerGroupTargetAssignmentMetadata: assignment epoch
	cgTargetMemberKey      = 7 // ConsumerGroupTargetAssignmentMember: a member's target
	cgCurrentKey           = 8 // ConsumerGroupCurrentMemberAssignment: a member's assignment
)

// cgValueVersion is the value version Kafka writes for all six (flexible).
const cgValueVersion = 0

var errBadConsumerRecord = errors.New("group: undecodable consumer group record")

// cgKey encodes a key: int16 record type, int16-length group ID and, for
// member records, int16-length member ID (non-flexible, as Kafka writes
// coordinator keys).
func cgKey(typ int16, groupID string, memberID ...string) []byte {
	b := kbin.AppendInt16(nil, typ)
	b = kbin.AppendString(b, groupID)
	for _, m := range memberID {
		b = kbin.AppendString(b, m)
	}
	return b
}

func hasMemberKey(typ int16) bool {
	return typ == cgMemberKey || typ == cgTargetMemberKey || typ == cgCurrentKey
}

func decodeCGKey(typ int16, key []byte) (groupID, memberID string, err error) {
	r := kbin.Reader{Src: key}
	r.Int16()
	groupID = r.String()
	if hasMemberKey(typ) {
		memberID = r.String()
	}
	if err := r.Complete(); err != nil {
		return "", "", fmt.Errorf("%w: key type %d: %w", errBadConsumerRecord, typ, err)
	}
	return groupID, memberID, nil
}

// cgValue starts a value: int16 version.
func cgValue() []byte { return kbin.AppendInt16(nil, cgValueVersion) }

// noTags ends a flexible struct with an empty tagged-field section.
func noTags(b []byte) []byte { return kbin.AppendUvarint(b, 0) }

func cgEpochRecord(groupID string, epoch int32) runtime.Record {
	v := kbin.AppendInt32(cgValue(), epoch)
	return runtime.Record{Key: cgKey(cgMetadataKey, groupID), Value: noTags(v)}
}

func cgPartitionMetadataRecord(groupID string, meta map[string]TopicMeta) runtime.Record {
	names := make([]string, 0, len(meta))
	for n := range meta {
		names = append(names, n)
	}
	sort.Strings(names)
	v := kbin.AppendCompactArrayLen(cgValue(), len(names))
	for _, n := range names {
		t := meta[n]
		v = kbin.AppendUuid(v, t.ID)
		v = kbin.AppendCompactString(v, t.Name)
		v = kbin.AppendInt32(v, t.Partitions)
		v = kbin.AppendCompactArrayLen(v, 0) // partition racks: not tracked
		v = noTags(v)
	}
	return runtime.Record{Key: cgKey(cgPartitionMetadataKey, groupID), Value: noTags(v)}
}

func cgMemberRecord(groupID string, m *cmember) runtime.Record {
	v := kbin.AppendCompactNullableString(cgValue(), m.instanceID)
	v = kbin.AppendCompactNullableString(v, m.rackID)
	v = kbin.AppendCompactString(v, m.clientID)
	v = kbin.AppendCompactString(v, m.clientHost)
	v = kbin.AppendCompactArrayLen(v, len(m.topicNames))
	for _, n := range m.topicNames {
		v = kbin.AppendCompactString(v, n)
	}
	v = kbin.AppendCompactNullableString(v, m.regex)
	v = kbin.AppendInt32(v, m.rebalanceTimeoutMs)
	v = kbin.AppendCompactNullableString(v, m.assignor)
	return runtime.Record{Key: cgKey(cgMemberKey, groupID, m.id), Value: noTags(v)}
}

func cgTargetEpochRecord(groupID string, epoch int32) runtime.Record {
	v := kbin.AppendInt32(cgValue(), epoch)
	return runtime.Record{Key: cgKey(cgTargetMetadataKey, groupID), Value: noTags(v)}
}

func appendPartSet(v []byte, set partSet) []byte {
	tps := set.byTopic()
	v = kbin.AppendCompactArrayLen(v, len(tps))
	for _, tp := range tps {
		v = kbin.AppendUuid(v, tp.id)
		v = kbin.AppendCompactArrayLen(v, len(tp.parts))
		for _, p := range tp.parts {
			v = kbin.AppendInt32(v, p)
		}
		v = noTags(v)
	}
	return v
}

func cgTargetMemberRecord(groupID, memberID string, target partSet) runtime.Record {
	v := appendPartSet(cgValue(), target)
	return runtime.Record{Key: cgKey(cgTargetMemberKey, groupID, memberID), Value: noTags(v)}
}

func cgCurrentRecord(groupID string, m *cmember) runtime.Record {
	v := kbin.AppendInt32(cgValue(), m.epoch)
	v = kbin.AppendInt32(v, m.prevEpoch)
	v = kbin.AppendInt8(v, m.state)
	v = appendPartSet(v, m.assigned)
	v = appendPartSet(v, m.revoking)
	return runtime.Record{Key: cgKey(cgCurrentKey, groupID, m.id), Value: noTags(v)}
}

// cgMemberTombstones removes a member, in Kafka's order: current
// assignment, target assignment, then subscription.
func cgMemberTombstones(groupID, memberID string) []runtime.Record {
	return []runtime.Record{
		{Key: cgKey(cgCurrentKey, groupID, memberID)},
		{Key: cgKey(cgTargetMemberKey, groupID, memberID)},
		{Key: cgKey(cgMemberKey, groupID, memberID)},
	}
}

// cgGroupTombstones deletes an (empty) consumer group, as Kafka's
// ConsumerGroup.createGroupTombstoneRecords: members first, then the
// target assignment epoch, the subscription metadata and the group epoch.
func cgGroupTombstones(groupID string, cg *consumerGroup) []runtime.Record {
	var recs []runtime.Record
	for _, id := range cg.sortedMemberIDs() {
		recs = append(recs, cgMemberTombstones(groupID, id)...)
	}
	return append(recs,
		runtime.Record{Key: cgKey(cgTargetMetadataKey, groupID)},
		runtime.Record{Key: cgKey(cgPartitionMetadataKey, groupID)},
		runtime.Record{Key: cgKey(cgMetadataKey, groupID)})
}

// reader helpers: a value is decoded with a kbin.Reader; any short read
// makes Complete fail, and array lengths are bounded by the bytes left.

func skipTags(r *kbin.Reader) {
	n := r.Uvarint()
	for i := uint32(0); i < n && r.Ok(); i++ {
		r.Uvarint()
		r.Span(int(r.Uvarint()))
	}
}

func arrayLen(r *kbin.Reader) int {
	n := r.CompactArrayLen()
	if n < 0 || int(n) > len(r.Src) {
		if n != -1 {
			r.Span(-1) // invalidates the reader
		}
		return 0
	}
	return int(n)
}

func readPartSet(r *kbin.Reader) partSet {
	out := partSet{}
	n := arrayLen(r)
	for i := 0; i < n && r.Ok(); i++ {
		id := r.Uuid()
		np := arrayLen(r)
		for j := 0; j < np && r.Ok(); j++ {
			out[tidp{id, r.Int32()}] = struct{}{}
		}
		skipTags(r)
	}
	return out
}

func readCGPartitionMetadata(r *kbin.Reader) map[string]TopicMeta {
	out := map[string]TopicMeta{}
	n := arrayLen(r)
	for i := 0; i < n && r.Ok(); i++ {
		var t TopicMeta
		t.ID = r.Uuid()
		t.Name = r.CompactString()
		t.Partitions = r.Int32()
		np := arrayLen(r)
		for j := 0; j < np && r.Ok(); j++ {
			r.Int32()
			nr := arrayLen(r)
			for k := 0; k < nr && r.Ok(); k++ {
				r.CompactString()
			}
			skipTags(r)
		}
		skipTags(r)
		out[t.Name] = t
	}
	return out
}

// readCGMember reads a member's subscription; tag 0 (classic member
// metadata) is skipped with the value's other tags. Only the fields the
// record carries are set.
func readCGMember(r *kbin.Reader) *cmember {
	m := &cmember{}
	m.instanceID = r.CompactNullableString()
	m.rackID = r.CompactNullableString()
	m.clientID = r.CompactString()
	m.clientHost = r.CompactString()
	n := arrayLen(r)
	for i := 0; i < n && r.Ok(); i++ {
		m.topicNames = append(m.topicNames, r.CompactString())
	}
	sort.Strings(m.topicNames)
	m.regex = r.CompactNullableString()
	m.rebalanceTimeoutMs = r.Int32()
	m.assignor = r.CompactNullableString()
	return m
}

// readCGCurrent reads a member's current assignment. Only the fields the
// record carries are set.
func readCGCurrent(r *kbin.Reader) *cmember {
	m := &cmember{}
	m.epoch = r.Int32()
	m.prevEpoch = r.Int32()
	m.state = r.Int8()
	m.assigned = readPartSet(r)
	m.revoking = readPartSet(r)
	return m
}

// replayCGValue decodes a KIP-848 value (int16 version, the fields read
// consumes, a tagged-field section) and applies it. A value that does not
// decode exactly to its last byte changes nothing.
func replayCGValue[T any](value []byte, read func(*kbin.Reader) T, apply func(T)) error {
	r := &kbin.Reader{Src: value}
	if v := r.Int16(); v < 0 {
		return fmt.Errorf("%w: value version %d", errBadConsumerRecord, v)
	}
	decoded := read(r)
	skipTags(r)
	if err := r.Complete(); err != nil {
		return fmt.Errorf("%w: %w", errBadConsumerRecord, err)
	}
	apply(decoded)
	return nil
}

// consumerGroupForReplay returns the consumer state of groupID, creating
// the group and its consumer state as Kafka's replay does for any
// non-tombstone consumer record.
func (s *Shard) consumerGroupForReplay(groupID string) *consumerGroup {
	g := s.groups[groupID]
	if g == nil {
		g = newGroup(groupID, -1)
		s.groups[groupID] = g
	}
	if g.cg == nil {
		g.cg = newConsumerGroup()
	}
	return g.cg
}

// memberForReplay returns the member memberID, adding it when a record
// names it first.
func (cg *consumerGroup) memberForReplay(memberID string) *cmember {
	m := cg.members[memberID]
	if m == nil {
		m = newCMember(memberID)
		cg.members[memberID] = m
	}
	return m
}

// replayConsumer applies one KIP-848 record: the only writer of consumer
// group state, at load and live.
func (s *Shard) replayConsumer(typ int16, key, value []byte) {
	groupID, memberID, err := decodeCGKey(typ, key)
	if err != nil {
		s.logger.Debug("skipping undecodable consumer group record key", "partition", s.partition, "err", err)
		return
	}
	if value == nil {
		s.replayConsumerTombstone(typ, groupID, memberID)
		return
	}
	if err := s.replayConsumerValue(typ, groupID, memberID, value); err != nil {
		s.logger.Warn("skipping undecodable consumer group record", "partition", s.partition, "group", groupID, "key_version", typ, "err", err)
	}
}

// replayConsumerValue applies a KIP-848 record that is not a tombstone;
// an undecodable value is returned as an error and changes nothing.
func (s *Shard) replayConsumerValue(typ int16, groupID, memberID string, value []byte) error {
	consumer := func() *consumerGroup { return s.consumerGroupForReplay(groupID) }
	switch typ {
	case cgMetadataKey:
		return replayCGValue(value, (*kbin.Reader).Int32, func(epoch int32) { consumer().epoch = epoch })
	case cgPartitionMetadataKey:
		return replayCGValue(value, readCGPartitionMetadata, func(meta map[string]TopicMeta) { consumer().subMeta = meta })
	case cgMemberKey:
		return replayCGValue(value, readCGMember, func(rm *cmember) {
			cg := consumer()
			m := cg.memberForReplay(memberID)
			if m.instanceID != nil && cg.static[*m.instanceID] == memberID {
				delete(cg.static, *m.instanceID)
			}
			m.instanceID, m.rackID, m.clientID, m.clientHost = rm.instanceID, rm.rackID, rm.clientID, rm.clientHost
			m.topicNames, m.regex, m.rebalanceTimeoutMs, m.assignor = rm.topicNames, rm.regex, rm.rebalanceTimeoutMs, rm.assignor
			if m.instanceID != nil {
				cg.static[*m.instanceID] = memberID
			}
		})
	case cgTargetMetadataKey:
		return replayCGValue(value, (*kbin.Reader).Int32, func(epoch int32) { consumer().assignmentEpoch = epoch })
	case cgTargetMemberKey:
		return replayCGValue(value, readPartSet, func(target partSet) { consumer().target[memberID] = target })
	case cgCurrentKey:
		return replayCGValue(value, readCGCurrent, func(rm *cmember) {
			cg := consumer()
			m := cg.memberForReplay(memberID)
			cg.removeOwners(m)
			m.epoch, m.prevEpoch, m.state, m.assigned, m.revoking = rm.epoch, rm.prevEpoch, rm.state, rm.assigned, rm.revoking
			cg.setOwners(m)
		})
	}
	return nil
}

func (s *Shard) replayConsumerTombstone(typ int16, groupID, memberID string) {
	g := s.groups[groupID]
	if g == nil || g.cg == nil {
		return
	}
	cg := g.cg
	switch typ {
	case cgMetadataKey:
		stopConsumerTimers(cg)
		g.cg = nil
		s.maybeDrop(g)
	case cgPartitionMetadataKey:
		cg.subMeta = map[string]TopicMeta{}
	case cgMemberKey:
		if m := cg.members[memberID]; m != nil {
			cg.removeOwners(m)
			stopCMemberTimers(m)
			if m.instanceID != nil && cg.static[*m.instanceID] == memberID {
				delete(cg.static, *m.instanceID)
			}
			delete(cg.members, memberID)
		}
	case cgTargetMetadataKey:
		cg.assignmentEpoch = 0
	case cgTargetMemberKey:
		delete(cg.target, memberID)
	case cgCurrentKey:
		if m := cg.members[memberID]; m != nil {
			cg.removeOwners(m)
			m.epoch, m.prevEpoch, m.state = leaveEpoch, -1, memberStable
			m.assigned, m.revoking = partSet{}, partSet{}
		}
	}
}

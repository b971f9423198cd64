package group

import (
	"context"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// groupAuthorizedOperations is the bitfield of the operations a group
// supports (READ 3, DELETE 6, DESCRIBE 8), what Kafka reports without an
// authorizer; the broker narrows it when ACLs apply.
const groupAuthorizedOperations = 1<<3 | 1<<6 | 1<<8

// DescribeGroup describes one group (DescribeGroups v0-6). An unknown group
// answers state "Dead", no protocol type and no error, as Kafka did before
// KIP-1043; for v6+ the broker turns a "Dead" answer into GROUP_ID_NOT_FOUND
// as Kafka 4 does. Member metadata and assignments are included only for a
// Stable group (Kafka's GroupMetadata.summary).
func (s *Shard) DescribeGroup(ctx context.Context, groupID string, includeAuthorizedOps bool) kmsg.DescribeGroupsResponseGroup {
	fail := func(code int16) kmsg.DescribeGroupsResponseGroup {
		r := kmsg.NewDescribeGroupsResponseGroup()
		r.Group = groupID
		r.ErrorCode = code
		r.Members = []kmsg.DescribeGroupsResponseGroupMember{}
		return r
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(kmsg.DescribeGroupsResponseGroup)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		r := fail(0)
		if includeAuthorizedOps {
			r.AuthorizedOperations = groupAuthorizedOperations
		}
		g := s.groups[groupID]
		if g == nil || g.is(stateDead) {
			r.State = stateDead.String()
			reply(r)
			return
		}
		if g.cg != nil {
			// Kafka 4: not a classic group. The broker answers
			// GROUP_ID_NOT_FOUND from v6 (keep this message), Dead before.
			r.State = stateDead.String()
			r.ErrorMessage = kmsg.StringPtr("Group " + groupID + " is not a classic group.")
			reply(r)
			return
		}
		r.State = g.state.String()
		r.ProtocolType = g.protocolType
		stable := g.is(stateStable)
		if stable {
			r.Protocol = g.protocol
		}
		for _, id := range g.order {
			m := g.members[id]
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID = m.id
			dm.InstanceID = optString(m.instanceID)
			dm.ClientID = m.clientID
			dm.ClientHost = m.clientHost
			dm.ProtocolMetadata = []byte{}
			dm.MemberAssignment = []byte{}
			if stable {
				dm.ProtocolMetadata = nonNil(m.metadata(g.protocol))
				dm.MemberAssignment = nonNil(m.assignment)
			}
			r.Members = append(r.Members, dm)
		}
		reply(r)
	})
}

// ListGroups lists the shard's groups (ListGroups v0-5), sorted by ID.
// statesFilter (v4+) matches state names case-insensitively; typesFilter
// (v5+) matches group types, and every group here is "classic". Empty
// filters match everything. Before Load completes it returns nothing;
// callers check Loaded to answer COORDINATOR_LOAD_IN_PROGRESS.
func (s *Shard) ListGroups(ctx context.Context, statesFilter, typesFilter []string) []kmsg.ListGroupsResponseGroup {
	fail := func(int16) []kmsg.ListGroupsResponseGroup { return nil }
	return runtime.Call(ctx, s.loop, fail, func(reply func([]kmsg.ListGroupsResponseGroup)) {
		if s.loop.Ready() != 0 {
			reply(nil)
			return
		}
		classic := len(typesFilter) == 0 || containsFold(typesFilter, "classic")
		consumer := len(typesFilter) == 0 || containsFold(typesFilter, "consumer")
		out := []kmsg.ListGroupsResponseGroup{}
		for _, g := range s.groups {
			if g.is(stateDead) {
				continue
			}
			if g.cg != nil {
				if lg := listConsumerGroup(g); consumer && (len(statesFilter) == 0 || containsFold(statesFilter, lg.GroupState)) {
					out = append(out, lg)
				}
				continue
			}
			if !classic || (len(statesFilter) > 0 && !containsFold(statesFilter, g.state.String())) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group = g.id
			lg.ProtocolType = g.protocolType
			lg.GroupState = g.state.String()
			lg.GroupType = "classic"
			out = append(out, lg)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
		reply(out)
	})
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// DeleteGroup deletes an Empty group and its offsets (DeleteGroups v0-2):
// tombstones for every offset and the group metadata, answered once
// committed. NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND when
// unknown.
func (s *Shard) DeleteGroup(ctx context.Context, groupID string) int16 {
	return runtime.Call(ctx, s.loop, func(code int16) int16 { return code }, func(reply func(int16)) {
		if code := s.loop.Ready(); code != 0 {
			reply(code)
			return
		}
		s.serial(groupID, func() { s.handleDeleteGroup(groupID, reply) })
	})
}

func (s *Shard) handleDeleteGroup(groupID string, reply func(int16)) {
	g := s.groups[groupID]
	switch {
	case g == nil || g.is(stateDead):
		reply(kerr.GroupIDNotFound.Code)
		return
	case g.cg != nil:
		s.deleteConsumerGroup(g, reply)
		return
	case !g.is(stateEmpty):
		reply(kerr.NonEmptyGroup.Code)
		return
	}
	recs := append(s.offsetTombstones(g), groupTombstone(g.id))
	s.killGroup(g, recs, reply)
}

// killGroup moves an Empty group to Dead (new joins answer
// COORDINATOR_NOT_AVAILABLE meanwhile, as in Kafka) and writes its
// tombstones; replay then forgets it. If the write fails the group is
// Empty again.
func (s *Shard) killGroup(g *group, recs []runtime.Record, done func(code int16)) {
	s.stopGroupTimers(g)
	g.transition(stateDead, s.nowMs())
	s.write(recs, false, func(code int16) {
		if code != 0 {
			if s.groups[g.id] == g && g.is(stateDead) {
				g.transition(stateEmpty, s.nowMs())
			}
		} else {
			s.maybeDrop(g)
		}
		done(code)
	})
}

func sortedOffsets(g *group) []topicPartition {
	tps := make([]topicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		tps = append(tps, tp)
	}
	sortPartitions(tps)
	return tps
}

func sortPartitions(tps []topicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].topic != tps[j].topic {
			return tps[i].topic < tps[j].topic
		}
		return tps[i].partition < tps[j].partition
	})
}

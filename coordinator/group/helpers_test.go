package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

func testLogger() *slog.Logger { return runtimetest.Logger("GROUP_TEST_LOG") }

func testConfig() Config {
	c := DefaultConfig()
	c.NumPartitions = 1
	c.InitialRebalanceDelay = 100 * time.Millisecond // lets concurrent joiners form one generation
	c.MinSessionTimeout = 10 * time.Millisecond
	c.MaxSessionTimeout = time.Minute
	return c
}

func startShard(t *testing.T, l Log, cfg Config) *Shard {
	t.Helper()
	s := NewShard(0, l, cfg, testLogger())
	runtimetest.Load(t, s)
	return s
}

func tctx(t *testing.T) context.Context {
	t.Helper()
	return WithClient(runtimetest.Context(t), "client", "/127.0.0.1")
}

func subscription(topics ...string) []byte {
	m := kmsg.ConsumerMemberMetadata{Version: 0, Topics: topics}
	return m.AppendTo(nil)
}

// tmember drives one member the way a client does.
type tmember struct {
	s        *Shard
	group    string
	instance *string
	memberID string
	gen      int32
	leader   bool
	members  []kmsg.JoinGroupResponseMember
	session  int32
	rebal    int32
	protos   []kmsg.JoinGroupRequestProtocol
	version  int16
}

func newMember(s *Shard, groupID string, topics ...string) *tmember {
	return &tmember{
		s: s, group: groupID, session: 10000, rebal: 2000, version: 9,
		protos: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: subscription(topics...)}},
	}
}

func (m *tmember) joinReq() *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = m.version
	req.Group = m.group
	req.SessionTimeoutMillis = m.session
	req.RebalanceTimeoutMillis = m.rebal
	req.MemberID = m.memberID
	req.InstanceID = m.instance
	req.ProtocolType = "consumer"
	req.Protocols = m.protos
	return req
}

// join joins (following MEMBER_ID_REQUIRED) and returns the final response.
func (m *tmember) join(t *testing.T) *kmsg.JoinGroupResponse {
	t.Helper()
	for i := 0; i < 3; i++ {
		resp := m.s.JoinGroup(tctx(t), m.joinReq())
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			m.memberID = resp.MemberID
			continue
		}
		if resp.ErrorCode == 0 {
			m.memberID = resp.MemberID
			m.gen = resp.Generation
			m.leader = resp.LeaderID == resp.MemberID
			m.members = resp.Members
		}
		return resp
	}
	t.Fatalf("join kept asking for a member ID")
	return nil
}

func (m *tmember) joinAsync(t *testing.T) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- m.join(t) }()
	return ch
}

func (m *tmember) sync(t *testing.T, assignments map[string][]byte) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.memberID
	req.InstanceID = m.instance
	pt, p := "consumer", "range"
	req.ProtocolType, req.Protocol = &pt, &p
	for id, a := range assignments {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return m.s.SyncGroup(tctx(t), req)
}

func (m *tmember) syncAsync(t *testing.T, assignments map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- m.sync(t, assignments) }()
	return ch
}

func (m *tmember) heartbeat(t *testing.T) int16 {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.memberID
	req.InstanceID = m.instance
	return m.s.Heartbeat(tctx(t), req).ErrorCode
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %s, want %s", what, runtimetest.ErrName(got), runtimetest.ErrName(want))
	}
}

// commit commits offsets for one topic.
func commit(t *testing.T, s *Shard, groupID, memberID string, gen int32, topic string, offsets map[int32]int64) *kmsg.OffsetCommitResponse {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = groupID
	req.Generation = gen
	req.MemberID = memberID
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = p
		rp.Offset = o
		rp.LeaderEpoch = 7
		md := fmt.Sprintf("md-%d", p)
		rp.Metadata = &md
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return s.OffsetCommit(tctx(t), req)
}

func commitCodes(resp *kmsg.OffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// fetch returns the committed offset of one partition (-1 if none).
func fetch(t *testing.T, s *Shard, groupID, topic string, partition int32) kmsg.OffsetFetchResponseGroupTopicPartition {
	t.Helper()
	req := kmsg.NewOffsetFetchRequestGroup()
	req.Group = groupID
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = []kmsg.OffsetFetchRequestGroupTopic{rt}
	resp := s.OffsetFetch(tctx(t), req, false)
	if resp.ErrorCode != 0 {
		t.Fatalf("offset fetch %s: %s", groupID, runtimetest.ErrName(resp.ErrorCode))
	}
	return resp.Topics[0].Partitions[0]
}

var errInjected = errors.New("injected append failure")

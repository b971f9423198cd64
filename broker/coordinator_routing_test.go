package broker

// The coordinator errors of FindCoordinator and the group APIs, driven
// through the wire: NOT_COORDINATOR from a broker that does not lead the
// group's partition, COORDINATOR_LOAD_IN_PROGRESS while it loads,
// COORDINATOR_NOT_AVAILABLE from FindCoordinator and from group writes
// that cannot be replicated, each at the level Kafka 4.x answers it.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/coordinator/txn"
)

// groupRequest is one request of a group API and the codes at the level
// where Kafka puts a coordinator error for it.
type groupRequest struct {
	name  string
	req   kmsg.Request
	codes func(kmsg.Response) []int16
}

// groupRequests are the group APIs for grp, offsets for topic's
// partitions 0 and 1, at pinned versions.
func groupRequests(grp, topic string) []groupRequest {
	partitions := []int32{0, 1}
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.Group, join.ProtocolType = grp, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 30000, 30000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(3)
	sync.Group, sync.Generation, sync.MemberID = grp, 1, "member-1"

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(3)
	hb.Group, hb.Generation, hb.MemberID = grp, 1, "member-1"

	leaveV2 := kmsg.NewPtrLeaveGroupRequest()
	leaveV2.SetVersion(2)
	leaveV2.Group, leaveV2.MemberID = grp, "member-1"
	leaveV4 := kmsg.NewPtrLeaveGroupRequest()
	leaveV4.SetVersion(4)
	leaveV4.Group = grp
	leaveV4.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "member-1"}}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = grp, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = topic
	for _, p := range partitions {
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Partition, cp.Offset = p, 7
		ct.Partitions = append(ct.Partitions, cp)
	}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{ct}

	fetch := func(version int16) *kmsg.OffsetFetchRequest {
		f := kmsg.NewPtrOffsetFetchRequest()
		f.SetVersion(version)
		if version >= 8 {
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = grp
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = topic, partitions
			g.Topics = []kmsg.OffsetFetchRequestGroupTopic{gt}
			f.Groups = []kmsg.OffsetFetchRequestGroup{g}
			return f
		}
		f.Group = grp
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = topic, partitions
		f.Topics = []kmsg.OffsetFetchRequestTopic{ft}
		return f
	}

	describe := kmsg.NewPtrDescribeGroupsRequest()
	describe.SetVersion(5)
	describe.Groups = []string{grp}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.SetVersion(2)
	del.Groups = []string{grp}

	offDel := kmsg.NewPtrOffsetDeleteRequest()
	offDel.Group = grp
	odt := kmsg.NewOffsetDeleteRequestTopic()
	odt.Topic = topic
	for _, p := range partitions {
		odp := kmsg.NewOffsetDeleteRequestTopicPartition()
		odp.Partition = p
		odt.Partitions = append(odt.Partitions, odp)
	}
	offDel.Topics = []kmsg.OffsetDeleteRequestTopic{odt}

	top := func(code int16) []int16 { return []int16{code} }
	return []groupRequest{
		{"JoinGroup v5", join, func(r kmsg.Response) []int16 { return top(r.(*kmsg.JoinGroupResponse).ErrorCode) }},
		{"SyncGroup v3", sync, func(r kmsg.Response) []int16 { return top(r.(*kmsg.SyncGroupResponse).ErrorCode) }},
		{"Heartbeat v3", hb, func(r kmsg.Response) []int16 { return top(r.(*kmsg.HeartbeatResponse).ErrorCode) }},
		{"LeaveGroup v2", leaveV2, func(r kmsg.Response) []int16 { return top(r.(*kmsg.LeaveGroupResponse).ErrorCode) }},
		{"LeaveGroup v4 (response level, no members)", leaveV4, func(r kmsg.Response) []int16 {
			resp := r.(*kmsg.LeaveGroupResponse)
			codes := top(resp.ErrorCode)
			for _, m := range resp.Members {
				codes = append(codes, m.ErrorCode)
			}
			return codes
		}},
		{"OffsetCommit v8 (every partition)", commit, func(r kmsg.Response) []int16 {
			var codes []int16
			for _, t := range r.(*kmsg.OffsetCommitResponse).Topics {
				for _, p := range t.Partitions {
					codes = append(codes, p.ErrorCode)
				}
			}
			return codes
		}},
		{"OffsetFetch v1 (every partition)", fetch(1), func(r kmsg.Response) []int16 {
			var codes []int16
			for _, t := range r.(*kmsg.OffsetFetchResponse).Topics {
				for _, p := range t.Partitions {
					codes = append(codes, p.ErrorCode)
				}
			}
			return codes
		}},
		{"OffsetFetch v5 (response level)", fetch(5), func(r kmsg.Response) []int16 { return top(r.(*kmsg.OffsetFetchResponse).ErrorCode) }},
		{"OffsetFetch v8 (group level)", fetch(8), func(r kmsg.Response) []int16 {
			var codes []int16
			for _, g := range r.(*kmsg.OffsetFetchResponse).Groups {
				codes = append(codes, g.ErrorCode)
			}
			return codes
		}},
		{"DescribeGroups v5 (group level)", describe, func(r kmsg.Response) []int16 {
			var codes []int16
			for _, g := range r.(*kmsg.DescribeGroupsResponse).Groups {
				codes = append(codes, g.ErrorCode)
			}
			return codes
		}},
		{"DeleteGroups v2 (group level)", del, func(r kmsg.Response) []int16 {
			var codes []int16
			for _, g := range r.(*kmsg.DeleteGroupsResponse).Groups {
				codes = append(codes, g.ErrorCode)
			}
			return codes
		}},
		{"OffsetDelete v0 (response level)", offDel, func(r kmsg.Response) []int16 { return top(r.(*kmsg.OffsetDeleteResponse).ErrorCode) }},
	}
}

// sendAll sends each request on its own connection to addr, all at once,
// and returns the responses in order.
func sendAll(t *testing.T, addr string, reqs []groupRequest) []kmsg.Response {
	t.Helper()
	raw := make([]kmsg.Request, len(reqs))
	for i, r := range reqs {
		raw[i] = r.req
	}
	return sendConcurrently(t, addr, raw)
}

// sendConcurrently sends each request at its set version on its own
// connection to addr, all at once (the coordinator errors come after the
// broker's waits), and returns the responses in order.
func sendConcurrently(t *testing.T, addr string, reqs []kmsg.Request) []kmsg.Response {
	t.Helper()
	resps := make([]kmsg.Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(15 * time.Second))
			resps[i], errs[i] = roundTrip(nc, "routing-test", req, 64<<20)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s v%d: %v", kmsg.NameForKey(reqs[i].Key()), reqs[i].GetVersion(), err)
		}
	}
	return resps
}

// wantGroupCodes fails the test unless every request answered want at its level.
func wantGroupCodes(t *testing.T, what string, reqs []groupRequest, resps []kmsg.Response, want *kerr.Error) {
	t.Helper()
	for i, r := range reqs {
		codes := r.codes(resps[i])
		if len(codes) == 0 {
			t.Errorf("%s: %s: no code at the expected level", what, r.name)
		}
		for _, c := range codes {
			if c != want.Code {
				t.Errorf("%s: %s: codes %v, want %s (%d)", what, r.name, codes, want.Message, want.Code)
				break
			}
		}
	}
}

// TestGroupCoordinatorLoading: while the group coordinator loads its
// __consumer_offsets partition (past the broker's wait), the group APIs
// answer COORDINATOR_LOAD_IN_PROGRESS at the level Kafka's coordinator
// runtime answers it (Heartbeat excepted: answered blindly, see
// TestHeartbeatWhileCoordinatorLoads).
func TestGroupCoordinatorLoading(t *testing.T) {
	tb := startBroker(t, t.TempDir(), oneGroupCoordinatorPartition)
	release := blockGroupLoads(t, tb.Broker)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "load-topic", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	coordinatorOf(ctx, t, kadm.NewClient(cl), "loading") // creates __consumer_offsets; its shard starts loading

	var reqs []groupRequest
	for _, r := range groupRequests("loading", "load-topic") {
		if r.req.Key() != kmsg.Heartbeat.Int16() {
			reqs = append(reqs, r)
		}
	}
	wantGroupCodes(t, "coordinator loading", reqs, sendAll(t, tb.addr, reqs), kerr.CoordinatorLoadInProgress)
	release()
}

// TestFindCoordinatorErrors: FindCoordinator answers INVALID_REQUEST for a
// key type other than group or transaction, and COORDINATOR_NOT_AVAILABLE
// while the internal topic cannot be created (replication factor above the
// live brokers), at the response level (node -1, no host, port -1) below
// v4 and per key from v4, as Kafka's KafkaApis.getCoordinator and
// FindCoordinatorRequest.getErrorResponse.
func TestFindCoordinatorErrors(t *testing.T) {
	tb := startBroker(t, t.TempDir(), offsetsTopicUncreatable, func(c *config.Config) {
		c.TransactionStateLogReplicationFactor, c.TransactionStateLogNumPartitions = 3, 2
	})
	type lookup struct {
		what    string
		version int16
		keyType int8
		want    *kerr.Error
	}
	var lookups []lookup
	var reqs []kmsg.Request
	for v := int16(0); v <= 6; v++ {
		lookups = append(lookups, lookup{"internal topic not creatable", v, 0, kerr.CoordinatorNotAvailable})
		if v >= 1 { // v0 has no key type: groups only
			lookups = append(lookups,
				lookup{"internal topic not creatable", v, 1, kerr.CoordinatorNotAvailable},
				lookup{"unknown key type", v, 9, kerr.InvalidRequest})
		}
	}
	for _, l := range lookups {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(l.version)
		req.CoordinatorType = l.keyType
		req.CoordinatorKey, req.CoordinatorKeys = "fc-key", []string{"fc-key", "fc-other"}
		reqs = append(reqs, req)
	}
	for i, r := range sendConcurrently(t, tb.addr, reqs) {
		l, resp := lookups[i], r.(*kmsg.FindCoordinatorResponse)
		what := fmt.Sprintf("v%d key type %d: %s", l.version, l.keyType, l.what)
		if l.version < 4 {
			wantErr(t, what, resp.ErrorCode, l.want)
			if resp.NodeID != -1 || resp.Host != "" || resp.Port != -1 {
				t.Errorf("%s: node %d %s:%d, want -1, no host, -1", what, resp.NodeID, resp.Host, resp.Port)
			}
			continue
		}
		if resp.ErrorCode != 0 || len(resp.Coordinators) != 2 {
			t.Fatalf("%s: top-level error %d, %d coordinators; want NONE and one per key", what, resp.ErrorCode, len(resp.Coordinators))
		}
		for _, c := range resp.Coordinators {
			wantErr(t, what+" "+c.Key, c.ErrorCode, l.want)
			if c.NodeID != -1 || c.Host != "" || c.Port != -1 {
				t.Errorf("%s %s: node %d %s:%d, want -1, no host, -1", what, c.Key, c.NodeID, c.Host, c.Port)
			}
		}
	}
	for _, name := range []string{offsetsTopic, transactionTopic} {
		if tb.view.Image().Topics[name] != nil {
			t.Errorf("%s was created with replication factor 3 on one broker", name)
		}
	}
}

// TestGroupCoordinatorRoutingErrors, in a two-broker cluster:
//   - the group APIs sent to the broker that does not lead the group's
//     __consumer_offsets partition answer NOT_COORDINATOR at Kafka's level;
//   - once the partition's ISR falls below min.insync.replicas, the
//     leader's assignment (SyncGroup) and offset commits cannot be stored
//     and answer COORDINATOR_NOT_AVAILABLE (Kafka's coordinator maps
//     NOT_ENOUGH_REPLICAS so);
//   - FindCoordinator for a transactional ID whose __transaction_state
//     partition's only replica is down answers COORDINATOR_NOT_AVAILABLE.
func TestGroupCoordinatorRoutingErrors(t *testing.T) {
	c := startCluster(t, 2, func(cfg *config.Config) {
		cfg.MinInsyncReplicas = 2
		cfg.OffsetsTopicReplicationFactor, cfg.OffsetsTopicNumPartitions = 2, 1
		cfg.TransactionStateLogReplicationFactor, cfg.TransactionStateLogNumPartitions, cfg.TransactionStateLogMinIsr = 1, 2, 1
	})
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 2, nil, "routing-topic"); err != nil {
		t.Fatal(err)
	}
	coord := coordinatorOf(ctx, t, adm, "routed")
	var leader, other *Broker
	for _, b := range c.brokers {
		if b.nodeID == coord {
			leader = b
		} else {
			other = b
		}
	}
	otherAddr := other.listeners[0].Addr().String()
	waitUntil(t, 10*time.Second, "the other broker sees the group's partition led by the coordinator", func() bool {
		tp := other.view.Image().Topics[offsetsTopic]
		return tp != nil && tp.Partitions[0].State.Leader == coord
	})
	reqs := groupRequests("routed", "routing-topic")
	wantGroupCodes(t, "sent to the broker that is not the coordinator", reqs, sendAll(t, otherAddr, reqs), kerr.NotCoordinator)

	// A transactional ID whose __transaction_state partition lives only
	// on the broker about to stop.
	var stranded string
	waitUntil(t, 20*time.Second, "__transaction_state is placed", func() bool {
		adm.FindTxnCoordinators(ctx, "txn-probe")
		tp := leader.view.Image().Topics[transactionTopic]
		if tp == nil {
			return false
		}
		for i := 0; i < 100 && stranded == ""; i++ {
			id := fmt.Sprintf("stranded-%d", i)
			if tp.Partitions[txn.PartitionFor(id, int32(len(tp.Partitions)))].State.Leader == other.nodeID {
				stranded = id
			}
		}
		return stranded != ""
	})

	// A group whose leader is waiting to hand out its assignment.
	leaderAddr := leader.listeners[0].Addr().String()
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(5)
	join.Group, join.ProtocolType = "starved", "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 60000, 60000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	first := rawRequestAs(t, leaderAddr, "routing-test", join).(*kmsg.JoinGroupResponse)
	wantErr(t, "first JoinGroup", first.ErrorCode, kerr.MemberIDRequired)
	join.MemberID = first.MemberID
	joined := rawRequestAs(t, leaderAddr, "routing-test", join).(*kmsg.JoinGroupResponse)
	if joined.ErrorCode != 0 || joined.LeaderID != first.MemberID {
		t.Fatalf("JoinGroup: %+v", joined)
	}

	stopped := -1
	for i, b := range c.brokers {
		if b == other {
			stopped = i
		}
	}
	c.stop(stopped)
	part, err := leader.partitions.leaderFor(offsetsTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the group's partition falls below min.insync.replicas", func() bool { return !part.EnoughReplicas() })

	var commit groupRequest
	for _, r := range reqs {
		if r.req.Key() == kmsg.OffsetCommit.Int16() {
			commit = r
		}
	}
	wantGroupCodes(t, "offsets not storable", []groupRequest{commit}, sendAll(t, leaderAddr, []groupRequest{commit}), kerr.CoordinatorNotAvailable)

	syncReq := kmsg.NewPtrSyncGroupRequest()
	syncReq.SetVersion(3)
	syncReq.Group, syncReq.Generation, syncReq.MemberID = "starved", joined.Generation, joined.MemberID
	syncReq.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: joined.MemberID, MemberAssignment: []byte{}}}
	wantErr(t, "SyncGroup, assignment not storable", rawRequestAs(t, leaderAddr, "routing-test", syncReq).(*kmsg.SyncGroupResponse).ErrorCode, kerr.CoordinatorNotAvailable)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorType, fc.CoordinatorKey = 1, stranded
	var code int16
	waitUntil(t, 20*time.Second, "FindCoordinator stops naming the stopped broker", func() bool {
		resp := rawRequestAs(t, leaderAddr, "routing-test", fc).(*kmsg.FindCoordinatorResponse)
		code = resp.ErrorCode
		return resp.NodeID != other.nodeID
	})
	wantErr(t, "FindCoordinator, partition leader down", code, kerr.CoordinatorNotAvailable)
}

package group

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

// TestReplayToleratesOtherVersions loads records as other Kafka versions
// wrote them: offset key/value v0, group metadata v4 (flexible), a KIP-848
// record (key version 3) that must be skipped, and a short key.
func TestReplayToleratesOtherVersions(t *testing.T) {
	ok0 := kmsg.OffsetCommitKey{Version: 0, Group: "old", Topic: "t", Partition: 2}
	ov0 := kmsg.OffsetCommitValue{Version: 0, Offset: 77, Metadata: "m", CommitTimestamp: 5}
	gv4 := kmsg.NewGroupMetadataValue()
	gv4.Version = 4
	gv4.ProtocolType = "consumer"
	gv4.Generation = 9
	proto, leader := "range", "m1"
	gv4.Protocol, gv4.Leader = &proto, &leader
	gv4.CurrentStateTimestamp = 1234
	mem := kmsg.NewGroupMetadataValueMember()
	mem.MemberID, mem.ClientID, mem.ClientHost = "m1", "c", "h"
	mem.RebalanceTimeoutMillis, mem.SessionTimeoutMillis = 1000, 10000
	mem.Subscription, mem.Assignment = subscription("t"), []byte("asg")
	gv4.Members = []kmsg.GroupMetadataValueMember{mem}
	kip848 := binary.BigEndian.AppendUint16(nil, 3)
	kip848 = append(kip848, 0, 1, 'x')
	recs := []runtime.Record{
		{Key: kip848, Value: []byte{0, 0, 1, 2, 3}},
		{Key: []byte{1}, Value: []byte{1}},
		{Key: ok0.AppendTo(nil), Value: ov0.AppendTo(nil)},
		{Key: groupKey("new"), Value: gv4.AppendTo(nil)},
	}
	l := &runtimetest.Log{}
	if _, err := l.Append(context.Background(), runtime.BuildBatch(recs, 1, runtime.NoProducer)); err != nil {
		t.Fatal(err)
	}
	s := startShard(t, l, testConfig())
	if p := fetch(t, s, "old", "t", 2); p.Offset != 77 || p.LeaderEpoch != -1 || *p.Metadata != "m" {
		t.Fatalf("v0 offset %+v", p)
	}
	d := describe(t, s, "new")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 || string(d.Members[0].MemberAssignment) != "asg" {
		t.Fatalf("v4 group %+v", d)
	}
	m := newMember(s, "new", "t")
	m.memberID, m.gen = "m1", 9
	wantCode(t, "loaded member heartbeat", m.heartbeat(t), 0)
}

package broker

// ListOffsets answers of compat-tests/ERRORS.md that follow Kafka 4.x's
// ReplicaManager.fetchOffset and Partition.fetchOffsetForTimestamp, each
// driven by a ListOffsets request pinned to its version.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
)

// listQuery is one partition of a hand-built ListOffsets request.
type listQuery struct {
	topic     string
	partition int32
	timestamp int64
}

// listOffsetsRaw sends one ListOffsets request at version from replicaID
// (-1 a consumer, -2 the debugging consumer), one request topic per query.
func listOffsetsRaw(t *testing.T, cl *kgo.Client, version int16, replicaID int32, qs ...listQuery) *kmsg.ListOffsetsResponse {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(version)
	req.ReplicaID = replicaID
	for _, q := range qs {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = q.topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = q.partition, q.timestamp
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return rawRequest(t, cl, req).(*kmsg.ListOffsetsResponse)
}

// listOne is listOffsetsRaw for one partition; it returns that
// partition's answer.
func listOne(t *testing.T, cl *kgo.Client, version int16, replicaID int32, q listQuery) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	resp := listOffsetsRaw(t, cl, version, replicaID, q)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("%+v: answered %+v, want one partition", q, resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

// TestListOffsetsDuplicatePartition: a partition named twice in one
// request is INVALID_REQUEST at every version, checked before the
// partition's existence and its timestamp, and answered once: Kafka's
// ReplicaManager.fetchOffset keys its answers by partition and groups them
// by topic. A partition named once in the same request is served, or
// answered UNKNOWN_TOPIC_OR_PARTITION if it does not exist.
func TestListOffsetsDuplicatePartition(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "dup", 3, nil)
	produceRaw(t, cl, 11, "dup", 2, makeBatch(-1, -1, -1, 4, time.Now().UnixMilli()))
	for v := int16(1); v <= 11; v++ {
		resp := listOffsetsRaw(t, cl, v, -1,
			listQuery{"dup", 0, -1},
			listQuery{"dup", 1, -1},
			listQuery{"dup", 0, -2},
			listQuery{"dup", 2, -1},
			listQuery{"dup", 1, -3}, // -3 below v7 would be UNSUPPORTED_VERSION
			listQuery{"dup", 9, -1}, // no partition 9
			listQuery{"dup", 9, -1},
			listQuery{"dup", 8, -1}, // no partition 8, named once
		)
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != "dup" {
			t.Fatalf("v%d: topics %+v, want the one topic dup once", v, resp.Topics)
		}
		got := map[int32]kmsg.ListOffsetsResponseTopicPartition{}
		for _, p := range resp.Topics[0].Partitions {
			if _, twice := got[p.Partition]; twice {
				t.Fatalf("v%d: partition %d answered twice", v, p.Partition)
			}
			got[p.Partition] = p
		}
		if len(got) != 5 {
			t.Fatalf("v%d: partitions %+v, want 0, 1, 2, 8 and 9 once each", v, resp.Topics[0].Partitions)
		}
		wantErr(t, fmt.Sprintf("v%d: unknown partition 8 named once", v), got[8].ErrorCode, kerr.UnknownTopicOrPartition)
		for _, p := range []int32{0, 1, 9} {
			wantErr(t, fmt.Sprintf("v%d: partition %d named twice", v, p), got[p].ErrorCode, kerr.InvalidRequest)
			if got[p].Offset != -1 || got[p].Timestamp != -1 {
				t.Errorf("v%d: partition %d offset %d timestamp %d with INVALID_REQUEST, want -1 -1", v, p, got[p].Offset, got[p].Timestamp)
			}
		}
		wantErr(t, fmt.Sprintf("v%d: partition 2 named once", v), got[2].ErrorCode, noError)
		if got[2].Offset != 4 {
			t.Errorf("v%d: partition 2 latest %d, want 4", v, got[2].Offset)
		}
	}
}

// TestListOffsetsSpecialTimestampVersions: each special timestamp is
// UNSUPPORTED_VERSION below the version that introduced it (-3 v7, -4 v8,
// -5 v9, -6 v11), and every other negative timestamp at any version, before
// the partition is looked up (Kafka's
// ReplicaManager.isListOffsetsTimestampUnsupported). From its version each
// is served; without tiered storage -5 (latest tiered) and -6 (earliest
// pending upload) answer NONE with offset, timestamp and leader epoch -1,
// as Kafka's UnifiedLog.fetchOffsetByTimestamp does when remote storage is
// off.
func TestListOffsetsSpecialTimestampVersions(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "special", 1, nil)
	ts := time.Now().UnixMilli()
	produceRaw(t, cl, 11, "special", 0, encodeBatch(t, 3, 0, -1, ts))
	since := map[int64]int16{-3: 7, -4: 8, -5: 9, -6: 11}
	for v := int16(1); v <= 11; v++ {
		for timestamp, from := range since {
			p := listOne(t, cl, v, -1, listQuery{"special", 0, timestamp})
			what := fmt.Sprintf("timestamp %d at v%d", timestamp, v)
			if v < from {
				wantErr(t, what, p.ErrorCode, kerr.UnsupportedVersion)
				if p.Offset != -1 || p.Timestamp != -1 {
					t.Errorf("%s: offset %d timestamp %d, want -1 -1", what, p.Offset, p.Timestamp)
				}
				continue
			}
			wantErr(t, what, p.ErrorCode, noError)
			switch timestamp {
			case -3: // the first of the records sharing the largest timestamp
				if p.Offset != 0 || p.Timestamp != ts {
					t.Errorf("%s: offset %d timestamp %d, want 0 %d", what, p.Offset, p.Timestamp, ts)
				}
			case -4:
				if p.Offset != 0 || p.Timestamp != -1 {
					t.Errorf("%s: offset %d timestamp %d, want 0 -1", what, p.Offset, p.Timestamp)
				}
			case -5, -6:
				if p.Offset != -1 || p.Timestamp != -1 || p.LeaderEpoch != -1 {
					t.Errorf("%s: offset %d timestamp %d leader epoch %d, want -1 -1 -1", what, p.Offset, p.Timestamp, p.LeaderEpoch)
				}
			}
		}
		for _, timestamp := range []int64{-7, -100, -1 << 62} {
			what := fmt.Sprintf("timestamp %d at v%d", timestamp, v)
			wantErr(t, what, listOne(t, cl, v, -1, listQuery{"special", 0, timestamp}).ErrorCode, kerr.UnsupportedVersion)
			wantErr(t, what+" on an unknown topic", listOne(t, cl, v, -1, listQuery{"no-such-topic", 0, timestamp}).ErrorCode, kerr.UnsupportedVersion)
		}
		wantErr(t, fmt.Sprintf("latest at v%d", v), listOne(t, cl, v, -1, listQuery{"special", 0, -1}).ErrorCode, noError)
		wantErr(t, fmt.Sprintf("earliest at v%d", v), listOne(t, cl, v, -1, listQuery{"special", 0, -2}).ErrorCode, noError)
	}
}

// TestListOffsetsDebugReplicaServedByFollower: replica_id -2, Kafka's
// debugging consumer, is served by a follower (fetchOnlyFromLeader false)
// up to the follower's log end, while a consumer's request (-1) there
// answers NOT_LEADER_OR_FOLLOWER; a broker holding no replica answers
// NOT_LEADER_OR_FOLLOWER to both.
func TestListOffsetsDebugReplicaServedByFollower(t *testing.T) {
	c := startCluster(t, 3)
	adm := kadm.NewClient(c.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := adm.CreateTopics(ctx, 1, 2, nil, "debug")
	if err != nil || created["debug"].Err != nil {
		t.Fatalf("create topic: %v %v", err, created["debug"].Err)
	}
	waitUntil(t, 10*time.Second, "full ISR", func() bool { return len(c.isrOf("debug", 0)) == 2 })
	prod := c.client(kgo.DefaultProduceTopic("debug"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := 0; i < 3; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.leaderOf("debug", 0)
	var follower, outsider *Broker
	for _, b := range c.brokers {
		switch {
		case b.nodeID == leader:
		case hostsReplica(b, "debug"):
			follower = b
		default:
			outsider = b
		}
	}
	if follower == nil || outsider == nil {
		t.Fatalf("leader %d: found follower %v, broker without a replica %v", leader, follower != nil, outsider != nil)
	}
	waitUntil(t, 10*time.Second, "the follower holds every record", func() bool {
		p, err := follower.partitions.hosted("debug", 0)
		return err == nil && p.LogEndOffset() == 3
	})
	fp, _ := follower.partitions.hosted("debug", 0)

	fcl := newClient(t, follower.listeners[0].Addr().String())
	for _, v := range []int16{1, 4, 11} {
		wantErr(t, fmt.Sprintf("consumer at v%d to the follower", v),
			listOne(t, fcl, v, -1, listQuery{"debug", 0, -1}).ErrorCode, kerr.NotLeaderForPartition)
		latest := listOne(t, fcl, v, -2, listQuery{"debug", 0, -1})
		wantErr(t, fmt.Sprintf("debugging consumer's latest at v%d to the follower", v), latest.ErrorCode, noError)
		if latest.Offset != 3 {
			t.Errorf("v%d: debugging consumer's latest %d on the follower, want its log end 3", v, latest.Offset)
		}
		if v >= 4 && latest.LeaderEpoch != fp.LeaderEpoch() {
			t.Errorf("v%d: leader epoch %d, want the follower's %d", v, latest.LeaderEpoch, fp.LeaderEpoch())
		}
		earliest := listOne(t, fcl, v, -2, listQuery{"debug", 0, -2})
		wantErr(t, fmt.Sprintf("debugging consumer's earliest at v%d to the follower", v), earliest.ErrorCode, noError)
		if earliest.Offset != 0 {
			t.Errorf("v%d: debugging consumer's earliest %d, want 0", v, earliest.Offset)
		}
	}
	ocl := newClient(t, outsider.listeners[0].Addr().String())
	for _, id := range []int32{-1, -2} {
		wantErr(t, fmt.Sprintf("replica_id %d to a broker without a replica", id),
			listOne(t, ocl, 11, id, listQuery{"debug", 0, -1}).ErrorCode, kerr.NotLeaderForPartition)
	}
}

// hostsReplica reports whether b's metadata image makes it a replica of
// every partition of topic.
func hostsReplica(b *Broker, topic string) bool {
	t := b.view.Image().Topics[topic]
	if t == nil {
		return false
	}
	for _, p := range t.Partitions {
		found := false
		for _, r := range p.Replicas {
			found = found || r == b.nodeID
		}
		if !found {
			return false
		}
	}
	return true
}

// TestListOffsetsNonConsumerSeesLogEnd: Kafka answers a request that is
// not a consumer's (replica_id other than -1) up to the log end offset,
// ignoring the isolation level, and never with OFFSET_NOT_AVAILABLE,
// which is for consumers of a new leader whose high watermark lags its
// epoch (Partition.fetchOffsetForTimestamp with no isolation level). The
// leader here has a second ISR replica that never fetches, so its high
// watermark stays 0 under 10 records.
func TestListOffsetsNonConsumerSeesLogEnd(t *testing.T) {
	cl, p := leaderBehindItsEpoch(t, "end", encodeBatch(t, 10, 0, -1, time.Now().UnixMilli()))
	if p.HighWatermark() != 0 || p.LogEndOffset() != 10 || !p.HighWatermarkBehindEpoch() {
		t.Fatalf("setup: high watermark %d, log end %d; want 0 and 10", p.HighWatermark(), p.LogEndOffset())
	}
	for _, v := range []int16{2, 5, 11} {
		notYet := kerr.OffsetNotAvailable
		if v < 5 {
			notYet = kerr.LeaderNotAvailable
		}
		wantErr(t, fmt.Sprintf("consumer's latest at v%d", v), listOne(t, cl, v, -1, listQuery{"end", 0, -1}).ErrorCode, notYet)
		for _, id := range []int32{-2, 7} {
			got := listOne(t, cl, v, id, listQuery{"end", 0, -1})
			wantErr(t, fmt.Sprintf("replica_id %d's latest at v%d", id, v), got.ErrorCode, noError)
			if got.Offset != 10 {
				t.Errorf("v%d: replica_id %d's latest %d, want the log end 10", v, id, got.Offset)
			}
			got = listOne(t, cl, v, id, listQuery{"end", 0, -3})
			if v >= 7 && (got.ErrorCode != 0 || got.Offset != 0) {
				t.Errorf("v%d: replica_id %d's max timestamp: %v offset %d, want offset 0 below the log end", v, id, kerr.ErrorForCode(got.ErrorCode), got.Offset)
			}
		}
	}
}

// leaderBehindItsEpoch makes a broker lead a new one-partition topic with a
// second replica in the ISR that never fetches, appends records (the high
// watermark stays at 0 under them) and starts a new leader epoch at their
// end: a new leader that has not heard the old high watermark yet, without
// the race of a real failover.
func leaderBehindItsEpoch(t *testing.T, topic string, records []byte) (*kgo.Client, *replica.Partition) {
	t.Helper()
	tb := startBroker(t, t.TempDir(), func(c *config.Config) { c.ReplicaLagTimeMaxMs = 600000 })
	cl := newClient(t, tb.addr)
	createTopic(t, cl, topic, 1, nil)
	p, err := tb.partitions.leaderFor(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	rs := replica.ReplicaSet{Replicas: []int32{tb.nodeID, tb.nodeID + 1}, ISR: []int32{tb.nodeID, tb.nodeID + 1}, MinISR: 1}
	if err := p.MakeLeader(p.LeaderEpoch()+1, rs, tb.nodeID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendAsLeader(records); err != nil {
		t.Fatal(err)
	}
	if err := p.MakeLeader(p.LeaderEpoch()+1, rs, tb.nodeID); err != nil {
		t.Fatal(err)
	}
	return cl, p
}

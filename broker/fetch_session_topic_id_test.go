package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchSessionTopicIDBoundary: as Kafka's FetchManager.newContext, a
// session opened below v13 (topics by name) and continued at v13+ (topics
// by ID), or the reverse, answers FETCH_SESSION_TOPIC_ID_ERROR at the top
// level with session ID 0 and no topics, after the epoch check, and leaves
// the session as it was: the same epoch on the session's own side works.
func TestFetchSessionTopicIDBoundary(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "tid", 1, nil)
	produceRaw(t, cl, 11, "tid", 0, makeBatch(-1, -1, -1, 2, time.Now().UnixMilli()))
	topicID := tb.view.Image().Topics["tid"].ID

	fetch := func(version int16, sessionID, epoch int32, withPartition bool) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(version)
		req.ReplicaID, req.MaxBytes = -1, 1<<20
		req.SessionID, req.SessionEpoch = sessionID, epoch
		if withPartition {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = "tid", topicID
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset, rp.LastFetchedEpoch = 1<<20, -1, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		return rawRequest(t, cl, req).(*kmsg.FetchResponse)
	}

	for _, tc := range []struct {
		name          string
		opened, other int16
	}{
		{"opened_by_name_continued_by_id", 12, 13},
		{"opened_by_id_continued_by_name", 13, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := fetch(tc.opened, 0, 0, true)
			if full.ErrorCode != 0 || full.SessionID == 0 {
				t.Fatalf("v%d full fetch: %v, session %d", tc.opened, kerr.ErrorForCode(full.ErrorCode), full.SessionID)
			}
			id := full.SessionID
			if bad := fetch(tc.other, id, 7, false); bad.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
				t.Errorf("v%d wrong epoch: %v, want INVALID_FETCH_SESSION_EPOCH (checked first)", tc.other, kerr.ErrorForCode(bad.ErrorCode))
			}
			bad := fetch(tc.other, id, 1, false)
			if bad.ErrorCode != kerr.FetchSessionTopicIDError.Code || bad.SessionID != 0 || len(bad.Topics) != 0 {
				t.Errorf("v%d incremental fetch of a v%d session: %v, session %d, %d topics; want FETCH_SESSION_TOPIC_ID_ERROR, session 0, no topics",
					tc.other, tc.opened, kerr.ErrorForCode(bad.ErrorCode), bad.SessionID, len(bad.Topics))
			}
			if ok := fetch(tc.opened, id, 1, false); ok.ErrorCode != 0 || ok.SessionID != id {
				t.Errorf("v%d incremental fetch at epoch 1 after the refusal: %v, session %d; want NONE in session %d",
					tc.opened, kerr.ErrorForCode(ok.ErrorCode), ok.SessionID, id)
			}
		})
	}
}

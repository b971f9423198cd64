package compat

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawRetry repeats a raw request while it answers a retriable coordinator
// error (loading, not available, concurrent transactions), as clients do,
// and returns the last error code.
func rawRetry(t *testing.T, what string, do func() int16) int16 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code := do()
		switch code {
		case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.ConcurrentTransactions.Code:
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %s after 15s", what, errCode(code))
			}
			time.Sleep(50 * time.Millisecond) // client retry backoff
			continue
		}
		return code
	}
}

// rawFetchOffset asks OffsetFetch v7 for one partition's committed offset,
// with or without require_stable, and returns the offset and the error
// code (partition-level, else top-level).
func rawFetchOffset(t *testing.T, c *rawConn, group, topic string, partition int32, stable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = group
	req.RequireStable = stable
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.OffsetFetchResponse)
	if resp.ErrorCode != 0 {
		return -1, resp.ErrorCode
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.Partition == partition {
				return p.Offset, p.ErrorCode
			}
		}
	}
	t.Fatalf("OffsetFetch v7: %s/%d missing from the response", topic, partition)
	return 0, 0
}

// TestTxnOffsetCommit: offsets committed inside a transaction are pending
// until it ends — OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT, without it the previous offset — become the
// group's offsets when it commits and are dropped when it aborts. Raw,
// version-pinned requests, for both protocols: classic (AddOffsetsToTxn,
// then TxnOffsetCommit v3, EndTxn v4) and transactions v2 (KIP-890:
// TxnOffsetCommit v5 adds the group's partition to the transaction itself;
// EndTxn v5 bumps the epoch). franz-go uses v2 against a broker that
// finalizes transaction.version=2, as kbroker does.
func TestTxnOffsetCommit(t *testing.T) {
	b := startTxnBroker(t)
	const topic = "txn-offsets"
	createTopic(t, newAdmin(t, b), topic, 1, nil)
	for _, mode := range []struct {
		name         string
		commitV, end int16
		addOffsets   bool
	}{
		{"classic", 3, 4, true},
		{"transactions_v2", 5, 5, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			c := dialRaw(t, b)
			txnID, group := "offsets-"+mode.name, "offsets-group-"+mode.name

			for _, kt := range []int8{0, 1} { // group, then transaction coordinator
				key := group
				if kt == 1 {
					key = txnID
				}
				rawRetry(t, "FindCoordinator", func() int16 {
					req := kmsg.NewPtrFindCoordinatorRequest()
					req.Version = 3
					req.CoordinatorKey, req.CoordinatorType = key, kt
					return c.roundTrip(req).(*kmsg.FindCoordinatorResponse).ErrorCode
				})
			}
			var pid int64
			var epoch int16
			if code := rawRetry(t, "InitProducerId", func() int16 {
				req := kmsg.NewPtrInitProducerIDRequest()
				req.Version = 4
				req.TransactionalID = &txnID
				req.TransactionTimeoutMillis = int32(txnTimeout.Milliseconds())
				req.ProducerID, req.ProducerEpoch = -1, -1
				resp := c.roundTrip(req).(*kmsg.InitProducerIDResponse)
				pid, epoch = resp.ProducerID, resp.ProducerEpoch
				return resp.ErrorCode
			}); code != 0 {
				t.Fatalf("InitProducerId: %s", errCode(code))
			}

			// One transaction that commits offset 42, one that aborts 99.
			for _, step := range []struct {
				offset int64
				commit bool
			}{{42, true}, {99, false}} {
				if mode.addOffsets {
					if code := rawRetry(t, "AddOffsetsToTxn", func() int16 {
						req := kmsg.NewPtrAddOffsetsToTxnRequest()
						req.Version = 3
						req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
						return c.roundTrip(req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
					}); code != 0 {
						t.Fatalf("AddOffsetsToTxn: %s", errCode(code))
					}
				}
				if code := rawRetry(t, "TxnOffsetCommit", func() int16 {
					req := kmsg.NewPtrTxnOffsetCommitRequest()
					req.Version = mode.commitV
					req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, group, pid, epoch
					req.Generation, req.MemberID = -1, ""
					rt := kmsg.NewTxnOffsetCommitRequestTopic()
					rt.Topic = topic
					rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch = 0, step.offset, -1
					rt.Partitions = append(rt.Partitions, rp)
					req.Topics = append(req.Topics, rt)
					resp := c.roundTrip(req).(*kmsg.TxnOffsetCommitResponse)
					if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
						t.Fatalf("TxnOffsetCommit v%d: response %+v", req.Version, resp)
					}
					return resp.Topics[0].Partitions[0].ErrorCode
				}); code != 0 {
					t.Fatalf("TxnOffsetCommit v%d offset %d: %s", mode.commitV, step.offset, errCode(code))
				}
				prev := int64(-1)
				if !step.commit {
					prev = 42
				}
				if off, code := rawFetchOffset(t, c, group, topic, 0, true); code != kerr.UnstableOffsetCommit.Code {
					t.Errorf("OffsetFetch require_stable during the transaction: offset %d, %s; want UNSTABLE_OFFSET_COMMIT", off, errCode(code))
				}
				if off, code := rawFetchOffset(t, c, group, topic, 0, false); code != 0 || off != prev {
					t.Errorf("OffsetFetch during the transaction: offset %d, %s; want the previous offset %d", off, errCode(code), prev)
				}

				if code := rawRetry(t, "EndTxn", func() int16 {
					req := kmsg.NewPtrEndTxnRequest()
					req.Version = mode.end
					req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, step.commit
					resp := c.roundTrip(req).(*kmsg.EndTxnResponse)
					if resp.ErrorCode == 0 && mode.end >= 5 {
						if resp.ProducerID != pid || resp.ProducerEpoch != epoch+1 {
							t.Errorf("EndTxn v5: producer %d epoch %d, want %d epoch %d (KIP-890 bumps the epoch)", resp.ProducerID, resp.ProducerEpoch, pid, epoch+1)
						}
						pid, epoch = resp.ProducerID, resp.ProducerEpoch
					}
					return resp.ErrorCode
				}); code != 0 {
					t.Fatalf("EndTxn commit=%v: %s", step.commit, errCode(code))
				}
				want := step.offset
				if !step.commit {
					want = 42
				}
				waitFor(t, 10*time.Second, fmt.Sprintf("OffsetFetch require_stable = %d after EndTxn(commit=%v)", want, step.commit), func() error {
					off, code := rawFetchOffset(t, c, group, topic, 0, true)
					if code != 0 || off != want {
						return fmt.Errorf("offset %d, %s", off, errCode(code))
					}
					return nil
				})
			}
		})
	}
}

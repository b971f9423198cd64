package fetcher

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets timestamps.
const (
	latestTimestamp   = -1
	earliestTimestamp = -2
)

// divergingTruncation is where a follower truncates when the leader
// answers a fetch with a diverging epoch (KIP-320), following Kafka's
// AbstractFetcherThread:
//   - the follower knows the leader's epoch: the smaller of the two end
//     offsets of that epoch — the logs agree below it;
//   - the follower knows only an earlier epoch: that epoch's local end
//     offset; the next fetch carries the earlier epoch and the leader
//     answers again, until the logs agree;
//   - the follower has no epoch at or below it: the leader's end offset.
//
// The result never exceeds the follower's log end offset.
func divergingTruncation(divEpoch int32, divEnd int64, localEpoch int32, localEnd, leo int64) int64 {
	switch {
	case divEnd < 0:
		return leo // the leader named no offset: nothing safe to cut
	case localEnd < 0:
		return min(divEnd, leo)
	case localEpoch == divEpoch:
		return min(divEnd, localEnd, leo)
	default:
		return min(localEnd, leo)
	}
}

// truncateDiverging truncates a follower to the divergence point and lets
// it fetch on. A truncation that changes nothing backs the partition off,
// so a leader repeating itself is not answered with a busy loop.
func (f *fetcher) truncateDiverging(s *sentPart, divEpoch int32, divEnd int64) {
	r := s.ps.r
	localEpoch, localEnd := r.EndOffsetForEpoch(divEpoch)
	target := divergingTruncation(divEpoch, divEnd, localEpoch, localEnd, s.fetchOffset)
	if err := r.TruncateTo(target); err != nil {
		f.fail(s, "truncate", err)
		return
	}
	f.cfg.Logger.Info("truncated follower to the leader's epoch boundary", "leader", f.source,
		"topic", s.ps.tp.topic, "partition", s.ps.tp.partition, "leader_epoch", s.leaderEpoch,
		"diverging_epoch", divEpoch, "diverging_end_offset", divEnd, "from", s.fetchOffset, "to", target)
	if off, lastEpoch, _ := r.FollowerState(); off == s.fetchOffset && lastEpoch == s.lastFetchedEpoch {
		f.delay([]*sentPart{s}, f.cfg.Backoff)
	}
}

// resolveOutOfRange handles OFFSET_OUT_OF_RANGE as Kafka's
// fetchOffsetAndTruncate does: a follower ahead of the leader's log end
// (after an unclean election) truncates to it; one behind the leader's log
// start offset empties its log and restarts there. The leader is asked
// without applyMu; the truncation then happens under it, only if the
// partition did not change meanwhile.
func (f *fetcher) resolveOutOfRange(cl *kgo.Client, s *sentPart) {
	latest, err := f.listOffset(cl, s, latestTimestamp)
	if err != nil {
		f.partitionError(s, "list offsets", err)
		return
	}
	var op func() error
	var to int64
	switch {
	case latest < s.fetchOffset:
		to = latest
		op = func() error { return s.ps.r.TruncateTo(latest) }
	default:
		earliest, err := f.listOffset(cl, s, earliestTimestamp)
		if err != nil {
			f.partitionError(s, "list offsets", err)
			return
		}
		if earliest <= s.fetchOffset {
			// In range again (the leader moved on meanwhile): fetch after
			// the usual pause rather than at once.
			f.delay([]*sentPart{s}, f.cfg.Backoff)
			return
		}
		to = earliest
		op = func() error { return s.ps.r.TruncateFullyAndStartAt(earliest) }
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if !f.current(s) {
		return
	}
	if err := op(); err != nil {
		f.fail(s, "truncate", err)
		return
	}
	f.cfg.Logger.Warn("reset follower fetch offset after OFFSET_OUT_OF_RANGE", "leader", f.source,
		"topic", s.ps.tp.topic, "partition", s.ps.tp.partition, "leader_epoch", s.leaderEpoch, "from", s.fetchOffset, "to", to)
}

// listOffset asks the leader for one offset of s's partition, as a
// replica (so a Kafka leader answers its log end, not its high watermark,
// for latestTimestamp).
func (f *fetcher) listOffset(cl *kgo.Client, s *sentPart, timestamp int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = f.cfg.NodeID
	req.IsolationLevel = 0
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = s.ps.tp.topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition = s.ps.tp.partition
	p.CurrentLeaderEpoch = s.leaderEpoch
	p.Timestamp = timestamp
	p.MaxNumOffsets = 1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)

	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	resp, err := request(ctx, cl, req)
	if err != nil {
		return -1, fmt.Errorf("list offsets from broker %d: %w", f.source, err)
	}
	for _, rt := range resp.(*kmsg.ListOffsetsResponse).Topics {
		if rt.Topic != s.ps.tp.topic {
			continue
		}
		for _, rp := range rt.Partitions {
			if rp.Partition != s.ps.tp.partition {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return -1, err
			}
			if rp.Offset < 0 {
				return -1, fmt.Errorf("list offsets from broker %d: no offset for timestamp %d", f.source, timestamp)
			}
			return rp.Offset, nil
		}
	}
	return -1, fmt.Errorf("list offsets from broker %d: partition missing from the response", f.source)
}

// Record batch framing: baseOffset (8) then batchLength (4), which counts
// the bytes after it.
const batchHeaderPrefix = 12

// wholeBatches trims a trailing partial batch: a leader may cut the last
// batch of a response at the size limit, and clients (and followers)
// discard the incomplete tail. The batches are otherwise left as the
// leader sent them: offsets, epochs and compacted gaps are the leader's.
func wholeBatches(b []byte) []byte {
	pos := 0
	for len(b)-pos >= batchHeaderPrefix {
		n := int(int32(binary.BigEndian.Uint32(b[pos+8:])))
		if n <= 0 || len(b)-pos-batchHeaderPrefix < n {
			break
		}
		pos += batchHeaderPrefix + n
	}
	return b[:pos]
}

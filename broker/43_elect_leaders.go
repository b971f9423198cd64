package broker

// ElectLeaders: v0-2
//
// Behavior:
// * Served by the controller; other brokers forward it there (KIP-590),
//   retrying until timeout_ms (at most 60 s) while no controller answers,
//   then REQUEST_TIMED_OUT at the top level (v1+) and for every partition
//   as given (forwardIfNotController). A broker that cannot forward (a
//   forwarded request, never forwarded twice) answers NOT_CONTROLLER for
//   every partition.
// * PREFERRED (0) moves leadership to the first replica of the assignment
//   when it is alive, not shutting down and in the ISR: ELECTION_NOT_NEEDED
//   if it already leads, PREFERRED_LEADER_NOT_AVAILABLE otherwise.
// * UNCLEAN (1) elects a leader for a partition whose leader is not alive:
//   a live ISR member if there is one, else any live replica, whose ISR is
//   reset to itself (records may be lost), whatever
//   unclean.leader.election.enable says. ELECTION_NOT_NEEDED if the leader
//   is alive, ELIGIBLE_LEADERS_NOT_AVAILABLE if no replica is.
// * A null topic list means every partition; ELECTION_NOT_NEEDED results
//   are then left out, as Kafka's controller does. Unknown topics and
//   partitions get UNKNOWN_TOPIC_OR_PARTITION; an unknown election type
//   INVALID_REQUEST.
// * Each election is a fenced compare-and-swap on the partition's etcd key
//   (controller.go); the answer goes out once this broker's metadata image
//   shows the new leaders, or at the request timeout.
//
// Version notes:
// * v1: election type and top-level error code; v2: flexible.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

// Election types of ElectLeaders v1+ (Kafka's ElectionType).
const (
	electionPreferred int8 = 0
	electionUnclean   int8 = 1
)

// electionConflictRetries is how often one partition's election is decided
// again after losing its compare-and-swap to a concurrent change.
const electionConflictRetries = 5

// electionTarget is one partition named by an ElectLeaders request.
type electionTarget struct {
	topic     string
	partition int32
}

// electionResult is one partition's answer.
type electionResult struct {
	err *kerr.Error // nil: elected
	msg string
}

func handleElectLeaders(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ElectLeadersRequest)
	resp := r.ResponseKind().(*kmsg.ElectLeadersResponse)
	ctx, cancel := c.b.adminContext(r.TimeoutMillis)
	defer cancel()
	if fwd, ok := c.forwardIfNotController(ctx, hdr, r, func(e *kerr.Error) kmsg.Response { return electLeadersFailed(r, e) }); ok {
		return now(fwd), nil
	}

	electionType := electionPreferred
	if r.Version >= 1 {
		electionType = r.ElectionType
	}
	electAll := r.Topics == nil
	targets := electionTargets(c.b.view.Image(), r.Topics)
	results := make([]electionResult, len(targets))
	ctl := c.b.controller.Load() // settled by forwardIfNotController
	var lastRev int64
	for i, tg := range targets {
		switch {
		case electionType != electionPreferred && electionType != electionUnclean:
			results[i] = electionResult{err: kerr.InvalidRequest, msg: "Unknown election type"}
		case ctl == nil:
			results[i] = electionResult{err: kerr.NotController}
		default:
			var rev int64
			rev, results[i] = c.b.electLeader(ctx, ctl, electionType, tg)
			lastRev = max(lastRev, rev)
		}
	}
	if electionType != electionPreferred && electionType != electionUnclean && r.Version >= 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	if lastRev > 0 {
		// Answer once this broker's Metadata shows the new leaders; if that
		// takes too long the elections have happened all the same.
		if err := c.b.view.WaitForRevision(ctx, lastRev); err != nil {
			c.b.logger.Debug("elected leaders not yet visible", "api", "ElectLeaders", "err", err)
		}
	}

	byTopic := map[string]int{}
	for i, tg := range targets {
		res := results[i]
		if electAll && res.err == kerr.ElectionNotNeeded {
			continue
		}
		ti, ok := byTopic[tg.topic]
		if !ok {
			ti = len(resp.Topics)
			byTopic[tg.topic] = ti
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = tg.topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = tg.partition
		if res.err != nil {
			rp.ErrorCode = res.err.Code
			if res.msg != "" {
				rp.ErrorMessage = kmsg.StringPtr(res.msg)
			}
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, rp)
	}
	return now(resp), nil
}

// electLeadersFailed answers r with e at the top level (v1+) and for every
// partition as given, duplicates included, with no message, as Kafka's
// ElectLeadersRequest.getErrorResponse does; a null topic list gets the
// top-level code only.
func electLeadersFailed(r *kmsg.ElectLeadersRequest, e *kerr.Error) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.ErrorCode = e.Code
	for _, rt := range r.Topics {
		t := kmsg.NewElectLeadersResponseTopic()
		t.Topic = rt.Topic
		for _, p := range rt.Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, e.Code
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// electionTargets lists the partitions a request names, each once, in
// request order; a nil list means every partition of img.
func electionTargets(img *etcd.Image, topics []kmsg.ElectLeadersRequestTopic) []electionTarget {
	var out []electionTarget
	if topics == nil {
		for _, t := range sortedTopics(img) {
			for _, p := range t.Partitions {
				out = append(out, electionTarget{topic: t.Name, partition: p.ID})
			}
		}
		return out
	}
	seen := map[electionTarget]bool{}
	for _, rt := range topics {
		for _, p := range rt.Partitions {
			tg := electionTarget{topic: rt.Topic, partition: p}
			if !seen[tg] {
				seen[tg] = true
				out = append(out, tg)
			}
		}
	}
	return out
}

// electLeader runs one ElectLeaders election through the controller and
// returns the commit revision (0 if nothing was written) and the answer.
// A lost compare-and-swap (the leader changed the ISR meanwhile) is decided
// again on a newer image.
func (b *Broker) electLeader(ctx context.Context, ctl *etcd.Controller, electionType int8, tg electionTarget) (int64, electionResult) {
	log := b.logger.With("controller_epoch", ctl.Epoch)
	for attempt := 0; ; attempt++ {
		img := b.view.Image()
		t := img.Topics[tg.topic]
		if t == nil || tg.partition < 0 || int(tg.partition) >= len(t.Partitions) {
			return 0, electionResult{err: kerr.UnknownTopicOrPartition, msg: "The partition does not exist."}
		}
		p := t.Partitions[tg.partition]
		plan, reason := planPreferred, reasonPreferred
		if electionType == electionUnclean {
			plan, reason = planUnclean, reasonUncleanRequested
		}
		next, kerrCode := plan(img, t.Name, p)
		if kerrCode != nil {
			return 0, electionResult{err: kerrCode}
		}
		rev, err := b.writeChange(ctx, log, ctl, partitionChange{topic: t.Name, partition: p.ID,
			modRev: p.ModRevision, old: p.State, next: next, reason: reason})
		switch {
		case err == nil:
			return rev, electionResult{}
		case errors.Is(err, etcd.ErrNotController):
			return 0, electionResult{err: kerr.NotController}
		case errors.Is(err, etcd.ErrUnknownTopic), errors.Is(err, etcd.ErrUnknownPartition):
			return 0, electionResult{err: kerr.UnknownTopicOrPartition, msg: "The partition does not exist."}
		case errors.Is(err, etcd.ErrConflict) && attempt < electionConflictRetries:
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			werr := b.view.WaitForRevision(wctx, img.Revision+1)
			cancel()
			if werr != nil && ctx.Err() != nil {
				return 0, electionResult{err: kerr.RequestTimedOut}
			}
		case ctx.Err() != nil:
			return 0, electionResult{err: kerr.RequestTimedOut}
		default:
			log.Warn("leader election failed", "topic", tg.topic, "partition", tg.partition, "err", err)
			return 0, electionResult{err: kerr.UnknownServerError, msg: err.Error()}
		}
	}
}

package broker

// FindCoordinator: v0-6
//
// Behavior:
// * Group keys: the leader of __consumer_offsets partition
//   abs(hash(group)) % partitions, the topic being created on first use
//   (COORDINATOR_NOT_AVAILABLE until it can be).
// * Transaction keys: likewise, on __transaction_state.
// * v4+ batches keys; older versions take one.
// * A coordinator that is not a live broker, or that advertises no endpoint
//   for the listener the client connected through, is
//   COORDINATOR_NOT_AVAILABLE (Kafka's getAliveBrokerNode finds no node).
//
// Version notes:
// * v1: key type, error message; v3: flexible; v4: batched keys.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	coordinatorTypeGroup       = 0
	coordinatorTypeTransaction = 1
)

func handleFindCoordinator(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.FindCoordinatorRequest)
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	ctx, cancel := context.WithTimeout(c.b.ctx, 10*time.Second)
	defer cancel()

	find := func(key string) kmsg.FindCoordinatorResponseCoordinator {
		out := kmsg.NewFindCoordinatorResponseCoordinator()
		out.Key, out.NodeID, out.Port = key, -1, -1
		fail := func(e *kerr.Error, msg string) {
			out.ErrorCode = e.Code
			out.ErrorMessage = kmsg.StringPtr(msg)
		}
		var node int32
		var kerrErr *kerr.Error
		switch r.CoordinatorType {
		case coordinatorTypeGroup:
			node, kerrErr = c.b.groups.coordinatorNode(ctx, key)
		case coordinatorTypeTransaction:
			node, kerrErr = c.b.txns.coordinatorNode(ctx, key)
		default:
			fail(kerr.InvalidRequest, "Unsupported key type.")
			return out
		}
		if kerrErr != nil {
			fail(kerrErr, kerrErr.Description)
			return out
		}
		info, ok := c.b.view.Image().Brokers[node]
		if !ok {
			fail(kerr.CoordinatorNotAvailable, "The coordinator is not available.")
			return out
		}
		ep, ok := c.b.advertisedEndpoint(info, c.listener)
		if !ok {
			fail(kerr.CoordinatorNotAvailable, "The coordinator has no endpoint for this listener.")
			return out
		}
		out.NodeID, out.Host, out.Port = node, ep.Host, ep.Port
		return out
	}

	if r.Version >= 4 {
		for _, key := range r.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, find(key))
		}
		return now(resp), nil
	}
	one := find(r.CoordinatorKey)
	resp.ErrorCode, resp.ErrorMessage = one.ErrorCode, one.ErrorMessage
	resp.NodeID, resp.Host, resp.Port = one.NodeID, one.Host, one.Port
	if one.ErrorCode != 0 {
		resp.Host = ""
	}
	return now(resp), nil
}

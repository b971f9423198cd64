package broker

// Pieces several API handlers share: the deadline and duplicate-name
// check of the admin requests the controller serves (CreateTopics,
// DeleteTopics, CreatePartitions, ElectLeaders), and the leader lookup and
// leader-epoch fencing of per-partition reads (ListOffsets,
// OffsetForLeaderEpoch).

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/etcd"
)

// defaultAdminTimeout bounds an admin request whose timeout is zero or
// negative, so that a stuck controller write cannot hold the connection.
const defaultAdminTimeout = 30 * time.Second

// adminContext is the context an admin request's controller writes and
// metadata waits run under: its TimeoutMillis (defaultAdminTimeout when
// not positive), ended early when the broker shuts down.
func (b *Broker) adminContext(timeoutMillis int32) (context.Context, context.CancelFunc) {
	timeout := time.Duration(timeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultAdminTimeout
	}
	return context.WithTimeout(b.ctx, timeout)
}

// repeatedNames returns the names given more than once among items: as
// in Kafka, every occurrence of a topic named twice in one admin request
// fails, since the request does not say which one is meant.
func repeatedNames[T any](items []T, name func(T) string) map[string]bool {
	count := map[string]int{}
	for _, it := range items {
		count[name(it)]++
	}
	repeated := map[string]bool{}
	for n, c := range count {
		if c > 1 {
			repeated[n] = true
		}
	}
	return repeated
}

// controllerWait bounds how long an admin request waits for this broker's
// controller role to be ready (see awaitController).
const controllerWait = 3 * time.Second

// awaitController returns this broker's controller handle for an admin
// request, or nil (NOT_CONTROLLER) when another broker is the controller.
// Clients see an election's result (Metadata names this broker) a moment
// before the controller loop runs here, and right after start-up there may
// be no controller yet; answering NOT_CONTROLLER then breaks clients that
// do not retry it (kafka-go), so the request waits up to controllerWait for
// the role to settle. A broker that is plainly not the controller answers
// at once, so the client goes to the right one.
func (b *Broker) awaitController(ctx context.Context) *etcd.Controller {
	deadline := time.Now().Add(controllerWait)
	for {
		if ctl := b.controller.Load(); ctl != nil {
			return ctl
		}
		if id := b.view.Image().ControllerID; id >= 0 && id != b.nodeID {
			return nil
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// forwardIfNotController sends an admin request this broker cannot serve,
// because another broker is the controller, to that controller and returns
// its answer, as a Kafka 4.x broker forwards admin requests (KIP-590):
// clients whose metadata names a stale controller, or that send admin
// requests to any broker, are served rather than told NOT_CONTROLLER.
// ok is false when this broker should answer itself: it is (or is about to
// be) the controller, no controller is known, the request was itself
// forwarded by a broker (never forwarded twice), or the controller could
// not be reached — then the handler answers NOT_CONTROLLER as before.
func (c *conn) forwardIfNotController(ctx context.Context, hdr requestInfo, req kmsg.Request) (kmsg.Response, bool) {
	if c.b.awaitController(ctx) != nil || strings.HasPrefix(hdr.clientID, interBrokerClientIDPrefix) {
		return nil, false
	}
	id := c.b.view.Image().ControllerID
	if id < 0 || id == c.b.nodeID || c.b.interBroker == nil {
		return nil, false
	}
	resp, err := c.b.interBroker.forward(ctx, id, req)
	if err != nil {
		c.b.logger.Info("could not forward an admin request to the controller; answering NOT_CONTROLLER", "api", kmsg.NameForKey(req.Key()), "controller", id, "err", err)
		return nil, false
	}
	return resp, true
}

// leaderOrCode returns the partition if this broker leads it, else the
// code a partition-level answer carries: UNKNOWN_TOPIC_OR_PARTITION when
// it does not exist, NOT_LEADER_OR_FOLLOWER otherwise (the client
// refreshes its metadata and retries on the leader).
func (b *Broker) leaderOrCode(topic string, partition int32) (*replica.Partition, int16) {
	p, err := b.partitions.leaderFor(topic, partition)
	if err != nil {
		return nil, b.partitionErrorCode(err, "find leader", topic, partition)
	}
	return p, 0
}

// fenceLeaderEpoch checks the leader epoch a client believes current
// (KIP-320; negative: not checked) against the partition's:
// FENCED_LEADER_EPOCH when the client's is older, UNKNOWN_LEADER_EPOCH when
// it is newer than this broker has seen yet.
func fenceLeaderEpoch(p *replica.Partition, current int32) int16 {
	if current < 0 {
		return 0
	}
	switch leader := p.LeaderEpoch(); {
	case current < leader:
		return kerr.FencedLeaderEpoch.Code
	case current > leader:
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}

package broker

// Pieces several API handlers share: the deadline, forwarding and
// duplicate-name check of the admin requests the controller serves (CreateTopics,
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

// forwardRetryTimeout bounds how long a forwarded admin request keeps
// trying to reach the controller: Kafka's forwarding channel gives up after
// 60 s (BrokerServer's retryTimeoutMs); kbroker gives up earlier when the
// request's own timeout_ms ends first.
const forwardRetryTimeout = 60 * time.Second

// forwardBackoff is the pause between two attempts to reach the same
// controller; a change of controller in the metadata image, or this broker
// becoming the controller, ends it early.
const forwardBackoff = 100 * time.Millisecond

// forwardIfNotController sends an admin request this broker cannot serve,
// because it is not the controller, to the controller and returns its
// answer, as a Kafka 4.x broker forwards admin requests (KIP-590). As
// Kafka's forwarding channel does, it keeps trying while no controller is
// elected, the controller cannot be reached, or the controller answers
// NOT_CONTROLLER (it was just deposed), re-resolving the controller from
// the metadata image each time, until ctx ends (the request's timeout_ms,
// at most forwardRetryTimeout); then it answers failed(REQUEST_TIMED_OUT),
// the code on every entry as Kafka's getErrorResponse puts it.
//
// ok is false when the handler should answer itself: this broker is (or
// becomes meanwhile) the controller; the request was itself forwarded by a
// broker (never forwarded twice: the handler answers NOT_CONTROLLER, which
// the forwarding broker retries); or the broker has no inter-broker channel
// (test brokers without one answer NOT_CONTROLLER).
func (c *conn) forwardIfNotController(ctx context.Context, hdr requestInfo, req kmsg.Request, failed func(*kerr.Error) kmsg.Response) (kmsg.Response, bool) {
	if strings.HasPrefix(hdr.clientID, interBrokerClientIDPrefix) || c.b.interBroker == nil {
		c.b.awaitController(ctx)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, forwardRetryTimeout)
	defer cancel()
	api := kmsg.NameForKey(req.Key())
	attempts := 0
	for {
		if c.b.controller.Load() != nil {
			return nil, false
		}
		img := c.b.view.Image()
		if id := img.ControllerID; id >= 0 && id != c.b.nodeID {
			attempts++
			resp, err := c.b.interBroker.forward(ctx, id, req)
			switch {
			case err == nil && !answersNotController(resp):
				return resp, true
			case err == nil:
				c.b.logger.Debug("controller answered NOT_CONTROLLER to a forwarded request; retrying", "api", api, "controller", id)
			default:
				c.b.logger.Debug("could not forward an admin request to the controller; retrying", "api", api, "controller", id, "err", err)
			}
		}
		if !c.awaitControllerChange(ctx, img) {
			c.b.logger.Info("no controller answered a forwarded admin request before its timeout; answering REQUEST_TIMED_OUT",
				"api", api, "controller", c.b.view.Image().ControllerID, "attempts", attempts, "client_id", hdr.clientID)
			return failed(kerr.RequestTimedOut), true
		}
	}
}

// awaitControllerChange pauses for forwardBackoff between forwarding
// attempts, returning early when this broker becomes the controller or the
// image names another controller than img; false once ctx has ended.
func (c *conn) awaitControllerChange(ctx context.Context, img *etcd.Image) bool {
	deadline := time.Now().Add(forwardBackoff)
	for time.Now().Before(deadline) {
		if c.b.controller.Load() != nil {
			return true
		}
		if now := c.b.view.Image(); now.ControllerID != img.ControllerID || now.ControllerEpoch != img.ControllerEpoch {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return ctx.Err() == nil
}

// answersNotController reports whether a controller's answer to a
// forwarded request carries NOT_CONTROLLER anywhere, which Kafka's
// forwarding channel takes as a stale controller and retries.
func answersNotController(resp kmsg.Response) bool {
	nc := kerr.NotController.Code
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.ElectLeadersResponse:
		if r.ErrorCode == nc {
			return true
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == nc {
					return true
				}
			}
		}
	}
	return false
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

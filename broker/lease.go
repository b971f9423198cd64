package broker

import (
	"errors"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// leaseGuard knows whether this broker's etcd lease is certainly still
// alive. A leader cut off from etcd keeps its lease only until the TTL runs
// out, after which the controller may elect another leader; so a leader
// stops acknowledging acks=all writes once half the TTL has passed since
// the last renewal it can vouch for.
//
// A renewal counts from the moment its request was sent (the lease was
// extended no earlier than that), never from when the answer was read: an
// answer that sat in a socket while the process was paused must not make a
// stale leader look fresh.
type leaseGuard struct {
	lastRenew atomic.Int64 // unix nanos: send time of the last confirmed renewal
	ttl       atomic.Int64 // nanoseconds, from etcd's answers
}

// watch renews the registration's lease itself (besides the session's own
// keepalive) to time each confirmed renewal from its request.
func (g *leaseGuard) watch(b *Broker) {
	defer b.wg.Done()
	reg := b.registration()
	lease := reg.Session().Lease()
	for {
		ttl := time.Duration(g.ttl.Load())
		select {
		case <-time.After(max(ttl/4, 100*time.Millisecond)):
		case <-reg.Lost():
			return
		case <-b.ctx.Done():
			return
		}
		sent := time.Now()
		resp, err := b.client.KeepAliveOnce(b.ctx, lease)
		if err == nil && resp.TTL > 0 {
			g.ttl.Store(int64(time.Duration(resp.TTL) * time.Second))
			g.lastRenew.Store(sent.UnixNano())
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return // the lease is gone: registering again starts a new watch
		}
	}
}

// fresh reports whether acks=all writes may still be acknowledged.
func (g *leaseGuard) fresh() bool {
	last, ttl := g.lastRenew.Load(), g.ttl.Load()
	return time.Since(time.Unix(0, last)) < time.Duration(ttl)/2
}

package broker

import (
	"cmp"
	"slices"

	"github.com/kbroker/kbroker/broker/replica"
)

// Follower fetching (KIP-392). A consumer that sends its rack (Fetch v11+,
// client.rack) may be told by the leader to read from another replica; that
// replica then serves it up to its own high watermark. The choice is made by
// the leader on each fetch, only when replica.selector.class names Kafka's
// RackAwareReplicaSelector.

// rackAwareReadReplica picks the replica a consumer in clientRack should
// read from, as Kafka's RackAwareReplicaSelector does: the leader when the
// client has no rack, when no live candidate shares its rack, or when the
// leader does; otherwise the same-rack replica with the highest log end
// offset, then the one caught up most recently. candidates start with the
// leader. rackOf reports a broker's rack and whether it is registered; a
// replica whose broker is not registered is never chosen. The result is -1
// when the consumer should stay on the leader.
func rackAwareReadReplica(candidates []replica.ReplicaView, clientRack string, rackOf func(int32) (string, bool)) int32 {
	if clientRack == "" || len(candidates) == 0 {
		return -1
	}
	leader := candidates[0].ID
	var sameRack []replica.ReplicaView
	for _, c := range candidates {
		if rack, alive := rackOf(c.ID); alive && rack == clientRack {
			if c.ID == leader {
				return -1
			}
			sameRack = append(sameRack, c)
		}
	}
	if len(sameRack) == 0 {
		return -1
	}
	best := slices.MaxFunc(sameRack, func(a, b replica.ReplicaView) int {
		if c := cmp.Compare(a.LogEndOffset, b.LogEndOffset); c != 0 {
			return c
		}
		return cmp.Compare(b.SinceCaughtUp, a.SinceCaughtUp) // less time since caught up wins
	})
	return best.ID
}

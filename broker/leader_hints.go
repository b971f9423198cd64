package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/etcd"
)

// KIP-951: a partition that answers NOT_LEADER_OR_FOLLOWER or
// FENCED_LEADER_EPOCH (Produce v10+, Fetch v16+) also names the leader this
// broker knows of, and the response lists how to reach it, so the client
// moves to the new leader without a metadata round trip first.

// leaderHint is the current leader of a partition as the metadata image
// shows it.
type leaderHint struct {
	id, epoch int32
}

// hintNode is one broker a response's leader hints point at, with the
// endpoint of the listener the client connected to.
type hintNode struct {
	id   int32
	host string
	port int32
	rack *string
}

// leaderHints collects the hints of one response.
type leaderHints struct {
	c     *conn
	img   *etcd.Image
	nodes []hintNode
}

func newLeaderHints(c *conn) *leaderHints { return &leaderHints{c: c, img: c.b.view.Image()} }

// forPartition returns the hint for a partition that answered code, or
// false when code needs none or no leader is known.
func (h *leaderHints) forPartition(topic string, partition int32, code int16) (leaderHint, bool) {
	if code != kerr.NotLeaderForPartition.Code && code != kerr.FencedLeaderEpoch.Code {
		return leaderHint{}, false
	}
	t := h.img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return leaderHint{}, false
	}
	st := t.Partitions[partition].State
	info, alive := h.img.Brokers[st.Leader]
	if st.Leader < 0 || !alive {
		return leaderHint{}, false
	}
	h.addNode(st.Leader, info)
	return leaderHint{id: st.Leader, epoch: st.LeaderEpoch}, true
}

func (h *leaderHints) addNode(id int32, info etcd.BrokerInfo) {
	for _, n := range h.nodes {
		if n.id == id {
			return
		}
	}
	ep, ok := h.c.b.advertisedEndpoint(info, h.c.listener)
	if !ok {
		return
	}
	n := hintNode{id: id, host: ep.Host, port: ep.Port}
	if info.Rack != "" {
		rack := info.Rack
		n.rack = &rack
	}
	h.nodes = append(h.nodes, n)
}

package broker

import (
	"net"
	"strconv"
	"time"

	"github.com/kbroker/kbroker/broker/fetcher"
	"github.com/kbroker/kbroker/broker/replica"
)

// followers is the replica fetcher manager as the partition set uses it:
// Follow starts (or moves) replication of a follower partition from its
// leader, Unfollow stops it and returns only once no fetch for it is being
// applied.
type followers interface {
	Follow(leader int32, p *replica.Partition)
	Unfollow(p *replica.Partition)
	Close()
}

// replicaFetchers adapts broker/fetcher's Manager: one fetcher goroutine
// per source broker, fetching over the inter-broker listener.
type replicaFetchers struct{ m *fetcher.Manager }

func newReplicaFetchers(b *Broker) *replicaFetchers {
	cfg := fetcher.NewConfig()
	cfg.NodeID = b.nodeID
	cfg.BrokerEpoch = func() int64 {
		reg := b.registration()
		if reg == nil {
			return -1
		}
		return reg.Epoch()
	}
	cfg.MaxBytes = b.cfg.ReplicaFetchResponseMaxBytes
	cfg.PartitionMaxBytes = b.cfg.ReplicaFetchMaxBytes
	cfg.MaxWait = time.Duration(b.cfg.ReplicaFetchWaitMaxMs) * time.Millisecond
	cfg.MinBytes = b.cfg.ReplicaFetchMinBytes
	cfg.Backoff = time.Duration(b.cfg.ReplicaFetchBackoffMs) * time.Millisecond
	listener := b.cfg.InterBrokerListener()
	cfg.Address = func(id int32) (string, bool) {
		info, ok := b.view.Image().Brokers[id]
		if !ok {
			return "", false
		}
		ep, ok := b.advertisedEndpoint(info, listener)
		if !ok {
			return "", false
		}
		return net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))), true
	}
	cfg.Logger = b.logger.With("component", "replica-fetcher")
	return &replicaFetchers{m: fetcher.NewManager(cfg)}
}

func (f *replicaFetchers) Follow(leader int32, p *replica.Partition) { f.m.Follow(leader, p) }
func (f *replicaFetchers) Unfollow(p *replica.Partition)             { f.m.Unfollow(p) }
func (f *replicaFetchers) Close()                                    { f.m.Close() }

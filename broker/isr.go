package broker

import (
	"context"
	"slices"
	"time"

	"github.com/kbroker/kbroker/broker/replica"
)

// isrWriter carries out the ISR changes partition leaders propose — a
// follower caught up (expand) or fell behind replica.lag.time.max.ms
// (shrink) — as compare-and-swap writes on the partition's etcd key, Kafka's
// AlterPartition. It runs on its own goroutine so no request waits on etcd.
type isrWriter struct {
	b  *Broker
	ch chan isrProposal
}

type isrProposal struct {
	p      *replica.Partition
	change replica.ISRChange
}

func newISRWriter(b *Broker) *isrWriter {
	return &isrWriter{b: b, ch: make(chan isrProposal, 1024)}
}

// propose queues a change; when the queue is full it is dropped and the
// partition proposes it again later.
func (w *isrWriter) propose(p *replica.Partition, c replica.ISRChange) {
	select {
	case w.ch <- isrProposal{p, c}:
	default:
		p.ISRChangeFailed(c)
	}
}

func (w *isrWriter) run() {
	defer w.b.wg.Done()
	lag := time.Duration(w.b.cfg.ReplicaLagTimeMaxMs) * time.Millisecond
	shrink := time.NewTicker(max(lag/2, 100*time.Millisecond))
	defer shrink.Stop()
	for {
		select {
		case pr := <-w.ch:
			w.apply(pr)
		case <-shrink.C:
			now := time.Now()
			for _, p := range w.b.partitions.all() {
				if c := p.LaggingISR(now, lag); c != nil {
					w.apply(isrProposal{p, *c})
				}
			}
		case <-w.b.ctx.Done():
			return
		}
	}
}

func (w *isrWriter) apply(pr isrProposal) {
	c := pr.change
	img := w.b.view.Image()
	t := img.Topics[c.Topic]
	if t == nil || int(c.Partition) >= len(t.Partitions) {
		return
	}
	pm := t.Partitions[c.Partition]
	st := pm.State
	if st.Leader != w.b.nodeID || st.LeaderEpoch != c.LeaderEpoch || slices.Equal(st.ISR, c.ISR) {
		pr.p.ISRChangeFailed(c)
		return
	}
	for _, id := range c.ISR {
		// KIP-841: only registered brokers that are not shutting down may
		// join the ISR.
		if info, ok := img.Brokers[id]; !slices.Contains(st.ISR, id) && (!ok || info.ShuttingDown) {
			pr.p.ISRChangeFailed(c)
			return
		}
	}
	st.ISR = slices.Clone(c.ISR)
	st.PartitionEpoch++
	ctx, cancel := context.WithTimeout(w.b.ctx, 10*time.Second)
	defer cancel()
	rev, err := w.b.store.CompareAndSetPartition(ctx, c.Topic, c.Partition, pm.ModRevision, st)
	if err != nil {
		pr.p.ISRChangeFailed(c)
		w.b.logger.Warn("ISR change not written; will retry", "topic", c.Topic, "partition", c.Partition, "isr", c.ISR, "err", err)
		return
	}
	w.b.logger.Info("ISR changed", "topic", c.Topic, "partition", c.Partition, "leader_epoch", st.LeaderEpoch, "old_isr", pm.State.ISR, "isr", st.ISR)
	if err := w.b.view.WaitForRevision(ctx, rev); err == nil {
		w.b.partitions.hosted(c.Topic, c.Partition) // adopt the new ISR now
	}
}

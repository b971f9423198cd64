package broker

// The controller's failover logic: while this broker holds the controller
// election, runController watches the metadata image and moves partition
// leadership as Apache Kafka's controller does.
//
//   - A broker whose registration vanished (its lease expired or was
//     revoked) loses its leaderships to the first replica in assignment
//     order that is alive and in the ISR (Kafka's offline partition leader
//     election); it is removed from every ISR. With no such replica, and
//     unclean.leader.election.enable (topic over broker default), the first
//     live replica leads with ISR = [it]; otherwise the partition goes
//     offline (leader -1) with its last ISR kept, so that a returning ISR
//     member can lead without loss.
//   - A broker that re-registered under a new epoch between two images (a
//     fast restart) is failed over first, then treated as starting, as
//     Kafka's controller handles a bounced broker: its new incarnation may
//     have lost unflushed records, so it must not keep leading.
//   - An offline partition whose ISR member (any replica, if unclean) is
//     alive again gets it as leader.
//   - A replica in a log dir its broker took offline after an I/O error
//     (BrokerInfo.OfflineDirs, KIP-112) counts as dead for its partition
//     alone: it leads nowhere and leaves the ISR; the broker's other
//     replicas are untouched.
//   - A broker in controlled shutdown (BrokerInfo.ShuttingDown) counts as
//     not alive for elections: its leaderships move to other live ISR
//     members and it leaves every ISR. Where no one can take over it keeps
//     leading (never an unclean election for a shutdown), as in Kafka.
//   - Every leader.imbalance.check.interval.seconds, with
//     auto.leader.rebalance.enable, partitions of a preferred replica (the
//     first in the assignment) whose share of misplaced leaders exceeds
//     leader.imbalance.per.broker.percentage move back to it where it is
//     alive and in the ISR.
//
// Every leader change bumps LeaderEpoch and PartitionEpoch; an ISR change
// alone bumps PartitionEpoch only. Every write is ctl.UpdatePartition:
// fenced by the controller epoch and a compare-and-swap on the partition
// key's ModRevision, so an ISR change the leader made meanwhile is never
// overwritten (ErrConflict: re-read the image and decide again) and a
// deposed controller writes nothing.
//
// Ownership: the controller loop owns no partition state — etcd does — and
// keeps only its timers. ElectLeaders requests write through the same
// fenced compare-and-swap from their handler goroutine; a race with the
// loop costs one side an ErrConflict and a re-read, never a lost update.

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

const (
	// controllerRetryBackoff is how long the loop waits before deciding
	// again after a write failed (a lost compare-and-swap, an etcd hiccup).
	controllerRetryBackoff = 200 * time.Millisecond
	// controllerWriteTimeout bounds one partition write.
	controllerWriteTimeout = 5 * time.Second
	// firstRebalanceDelay is when the first preferred-leader check runs
	// after the election (Kafka schedules it 5 s after becoming controller),
	// unless the configured interval is shorter.
	firstRebalanceDelay = 5 * time.Second
)

// Reasons logged with each change the controller writes.
const (
	reasonBrokerFailure    = "leader broker failed"
	reasonControlled       = "controlled shutdown"
	reasonLogDirFailure    = "leader's log dir failed"
	reasonOffline          = "offline partition leader election"
	reasonUnclean          = "unclean leader election"
	reasonNoLeader         = "no live in-sync replica"
	reasonISRFailure       = "in-sync replica failed"
	reasonISRShutdown      = "in-sync replica shutting down"
	reasonPreferred        = "preferred leader election"
	reasonAutoRebalance    = "auto leader rebalance"
	reasonUncleanRequested = "unclean leader election (ElectLeaders)"
)

// partitionChange is one partition write the controller decided on.
type partitionChange struct {
	topic     string
	partition int32
	modRev    int64 // the ModRevision the decision was made at
	old, next etcd.PartitionState
	reason    string
}

// runController runs the controller's event loop until ctx ends or ctl is
// deposed. Call it in its own goroutine when b.controller is set; it returns
// at once once the election key is gone, and a deposed controller's writes
// fail anyway (ErrNotController).
func (b *Broker) runController(ctx context.Context, ctl *etcd.Controller) {
	log := b.logger.With("controller_epoch", ctl.Epoch)
	log.Info("controller loop started")
	defer log.Info("controller loop stopped")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctl.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	images, unsubscribe := b.view.Subscribe()
	defer unsubscribe()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	interval := time.Duration(max(b.cfg.LeaderImbalanceCheckIntervalSeconds, 1)) * time.Second
	rebalance := time.NewTimer(min(firstRebalanceDelay, interval))
	defer rebalance.Stop()

	// epochs is the broker epoch of every registration this loop has
	// handled, to notice a broker that restarted between two images.
	var epochs map[int32]int64
	for {
		var changes []partitionChange
		var failoverImg *etcd.Image
		select {
		case <-ctx.Done():
			return
		case _, ok := <-images:
			if !ok {
				return
			}
			failoverImg = b.view.Image()
		case <-retry.C:
			failoverImg = b.view.Image()
		case <-rebalance.C:
			rebalance.Reset(interval)
			if b.cfg.AutoLeaderRebalanceEnable {
				changes = planRebalance(b.view.Image(), b.cfg.LeaderImbalancePerBrokerPercentage)
			}
		}
		if failoverImg != nil {
			if epochs == nil {
				epochs = brokerEpochs(failoverImg)
			}
			bounced := bouncedBrokers(epochs, failoverImg)
			for _, id := range bounced {
				log.Info("broker re-registered with a new epoch; failing over its previous incarnation", "broker", id,
					"old_epoch", epochs[id], "epoch", failoverImg.Brokers[id].Epoch)
			}
			changes = b.planFailovers(withoutBrokers(failoverImg, bounced))
		}
		rev, failed := int64(0), false
		if len(changes) > 0 {
			rev, failed = b.applyChanges(ctx, log, ctl, changes)
		}
		if ctx.Err() != nil {
			return
		}
		if failed {
			retry.Reset(controllerRetryBackoff)
		} else if failoverImg != nil {
			epochs = brokerEpochs(failoverImg)
		}
		if rev > 0 {
			// Decide the next round on an image that shows these writes,
			// or every write would be planned again and lose its CAS.
			wctx, wcancel := context.WithTimeout(ctx, controllerWriteTimeout)
			if err := b.view.WaitForRevision(wctx, rev); err != nil && ctx.Err() == nil {
				log.Warn("controller writes not yet visible in the metadata image", "err", err)
				retry.Reset(controllerRetryBackoff)
			}
			wcancel()
		}
	}
}

// brokerEpochs maps every registered broker to its epoch.
func brokerEpochs(img *etcd.Image) map[int32]int64 {
	m := make(map[int32]int64, len(img.Brokers))
	for id, bi := range img.Brokers {
		m[id] = bi.Epoch
	}
	return m
}

// bouncedBrokers lists the brokers registered in img under another epoch
// than the one last handled: they restarted (lease expired or evicted, then
// registered again) and the loop may never have seen them gone, as images
// coalesce. Like Kafka's controller with a bounced broker, the loop treats
// the old incarnation as failed — its leaderships move and it leaves every
// ISR, since a restarted broker may have lost unflushed records — and then
// the new one as starting.
func bouncedBrokers(epochs map[int32]int64, img *etcd.Image) []int32 {
	var out []int32
	for id, bi := range img.Brokers {
		if e, ok := epochs[id]; ok && e != bi.Epoch {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// withoutBrokers returns img as if brokers ids were not registered.
func withoutBrokers(img *etcd.Image, ids []int32) *etcd.Image {
	if len(ids) == 0 {
		return img
	}
	cp := *img
	cp.Brokers = maps.Clone(img.Brokers)
	for _, id := range ids {
		delete(cp.Brokers, id)
	}
	return &cp
}

// applyChanges writes changes one by one. It returns the newest commit
// revision and whether some write failed and the decision must be retried.
func (b *Broker) applyChanges(ctx context.Context, log *slog.Logger, ctl *etcd.Controller, changes []partitionChange) (int64, bool) {
	var last int64
	failed := false
	for _, ch := range changes {
		rev, err := b.writeChange(ctx, log, ctl, ch)
		switch {
		case err == nil:
			last = max(last, rev)
		case errors.Is(err, etcd.ErrNotController):
			log.Warn("controller deposed; stopping", "err", err)
			return last, false
		case ctx.Err() != nil:
			return last, false
		case errors.Is(err, etcd.ErrConflict):
			// The leader changed the ISR (or the topic moved) since the
			// image: the next image shows why; decide again then.
			log.Debug("partition changed under the controller; will retry", "topic", ch.topic, "partition", ch.partition, "err", err)
			failed = true
		case errors.Is(err, etcd.ErrUnknownTopic), errors.Is(err, etcd.ErrUnknownPartition):
			// Deleted meanwhile: nothing left to fail over.
		default:
			log.Warn("controller write failed; will retry", "topic", ch.topic, "partition", ch.partition, "err", err)
			failed = true
		}
	}
	return last, failed
}

// writeChange commits one change and logs it.
func (b *Broker) writeChange(ctx context.Context, log *slog.Logger, ctl *etcd.Controller, ch partitionChange) (int64, error) {
	wctx, cancel := context.WithTimeout(ctx, controllerWriteTimeout)
	defer cancel()
	rev, err := ctl.UpdatePartition(wctx, ch.topic, ch.partition, ch.modRev, ch.next)
	if err != nil {
		return 0, err
	}
	if ch.old.Leader != ch.next.Leader {
		log.Info("partition leader changed", "topic", ch.topic, "partition", ch.partition,
			"old_leader", ch.old.Leader, "leader", ch.next.Leader, "leader_epoch", ch.next.LeaderEpoch,
			"isr", ch.next.ISR, "reason", ch.reason)
	} else {
		log.Info("partition ISR changed by controller", "topic", ch.topic, "partition", ch.partition,
			"leader", ch.next.Leader, "leader_epoch", ch.next.LeaderEpoch,
			"old_isr", ch.old.ISR, "isr", ch.next.ISR, "reason", ch.reason)
	}
	return rev, nil
}

// planFailovers returns the change every partition of img needs because
// of dead or shutting-down brokers, or offline partitions that can lead
// again.
func (b *Broker) planFailovers(img *etcd.Image) []partitionChange {
	var out []partitionChange
	for _, t := range sortedTopics(img) {
		unclean := b.uncleanFor(t)
		for _, p := range t.Partitions {
			if next, reason, ok := planFailover(img, t.Name, p, unclean); ok {
				out = append(out, partitionChange{topic: t.Name, partition: p.ID, modRev: p.ModRevision,
					old: p.State, next: next, reason: reason})
			}
		}
	}
	return out
}

// uncleanFor returns a lazy unclean.leader.election.enable lookup for t:
// the topic override over the broker default, resolved only when a
// partition has no live ISR member (it is rarely needed).
func (b *Broker) uncleanFor(t *etcd.Topic) func() bool {
	resolved, v := false, b.cfg.UncleanLeaderElectionEnable
	return func() bool {
		if !resolved {
			resolved = true
			if _, ok := t.Configs["unclean.leader.election.enable"]; ok {
				if tc, err := config.ResolveTopicConfig(b.cfg, t.Configs); err == nil {
					v = tc.UncleanLeaderElectionEnable
				} else {
					b.logger.Warn("topic configs do not resolve; using the broker's unclean.leader.election.enable",
						"topic", t.Name, "err", err)
				}
			}
		}
		return v
	}
}

// electable reports whether broker id may lead or stay in an ISR: it is
// registered and not in controlled shutdown (Kafka's live brokers exclude
// shutting-down ones).
func electable(img *etcd.Image, id int32) bool {
	bi, ok := img.Brokers[id]
	return ok && !bi.ShuttingDown
}

// replicaElectable is electable for broker id's replica of one partition:
// also not in a log dir the broker took offline (KIP-112).
func replicaElectable(img *etcd.Image, id int32, topic string, partition int32) bool {
	return electable(img, id) && !img.Brokers[id].ReplicaOffline(topic, partition)
}

// planFailover decides one partition's change, if any, given which brokers
// img shows alive. unclean is consulted only when no ISR member can lead.
func planFailover(img *etcd.Image, topic string, p etcd.Partition, unclean func() bool) (etcd.PartitionState, string, bool) {
	cur := p.State
	if p.ModRevision == 0 {
		return cur, "", false // no partition key: nothing to compare against
	}
	ok := func(id int32) bool { return replicaElectable(img, id, topic, p.ID) }
	keep := func(id int32) bool { return id == cur.Leader || ok(id) }
	if cur.Leader >= 0 && ok(cur.Leader) {
		// The leader is fine; drop dead or departing followers from the ISR.
		return shrinkISR(img, cur, keep)
	}
	leaderInfo, registered := img.Brokers[cur.Leader]
	// A leader whose replica went offline with its log dir cannot go on
	// leading, as a dead one cannot.
	replicaLost := registered && leaderInfo.ReplicaOffline(topic, p.ID)
	if l := firstReplica(p.Replicas, func(id int32) bool { return ok(id) && slices.Contains(cur.ISR, id) }); l >= 0 {
		reason := reasonOffline
		switch {
		case cur.Leader >= 0 && replicaLost:
			reason = reasonLogDirFailure
		case cur.Leader >= 0 && registered:
			reason = reasonControlled
		case cur.Leader >= 0:
			reason = reasonBrokerFailure
		}
		return etcd.PartitionState{
			Leader:         l,
			LeaderEpoch:    cur.LeaderEpoch + 1,
			ISR:            filterIDs(cur.ISR, ok),
			PartitionEpoch: cur.PartitionEpoch + 1,
		}, reason, true
	}
	if cur.Leader >= 0 && registered && !replicaLost {
		// In controlled shutdown with no one in sync to take over: it keeps
		// leading, as in Kafka (an unclean election would lose data the
		// leader still has).
		return shrinkISR(img, cur, keep)
	}
	if unclean() {
		if l := firstReplica(p.Replicas, ok); l >= 0 {
			return etcd.PartitionState{
				Leader:         l,
				LeaderEpoch:    cur.LeaderEpoch + 1,
				ISR:            []int32{l},
				PartitionEpoch: cur.PartitionEpoch + 1,
			}, reasonUnclean, true
		}
	}
	if cur.Leader < 0 {
		return cur, "", false // already offline
	}
	// The leader is gone and no one may take over: offline. The ISR stays
	// as it was, so that its members (which hold every committed record)
	// can lead cleanly when they return.
	next := cur
	next.Leader = -1
	next.LeaderEpoch++
	next.PartitionEpoch++
	next.ISR = slices.Clone(cur.ISR)
	return next, reasonNoLeader, true
}

// shrinkISR removes the members keep rejects from cur's ISR, bumping the
// partition epoch only.
func shrinkISR(img *etcd.Image, cur etcd.PartitionState, keep func(int32) bool) (etcd.PartitionState, string, bool) {
	isr := filterIDs(cur.ISR, keep)
	if len(isr) == len(cur.ISR) {
		return cur, "", false
	}
	reason := reasonISRFailure
	for _, id := range cur.ISR {
		if !keep(id) {
			if _, ok := img.Brokers[id]; ok {
				reason = reasonISRShutdown
			}
		}
	}
	next := cur
	next.ISR = isr
	next.PartitionEpoch++
	return next, reason, true
}

// planPreferred elects p's preferred replica (the first in its assignment)
// if it is alive, in the ISR and not already leading. The error is the
// ElectLeaders answer when it cannot or need not.
func planPreferred(img *etcd.Image, topic string, p etcd.Partition) (etcd.PartitionState, *kerr.Error) {
	cur := p.State
	if len(p.Replicas) == 0 || p.ModRevision == 0 {
		return cur, kerr.PreferredLeaderNotAvailable
	}
	pref := p.Replicas[0]
	switch {
	case cur.Leader == pref:
		return cur, kerr.ElectionNotNeeded
	case !replicaElectable(img, pref, topic, p.ID) || !slices.Contains(cur.ISR, pref):
		return cur, kerr.PreferredLeaderNotAvailable
	}
	next := cur
	next.ISR = slices.Clone(cur.ISR)
	next.Leader = pref
	next.LeaderEpoch++
	next.PartitionEpoch++
	return next, nil
}

// planUnclean is ElectLeaders' UNCLEAN election: only for a partition
// without a live leader, the first live ISR member or else the first live
// replica (ISR = [it]), whatever unclean.leader.election.enable says.
func planUnclean(img *etcd.Image, topic string, p etcd.Partition) (etcd.PartitionState, *kerr.Error) {
	cur := p.State
	if cur.Leader >= 0 && replicaElectable(img, cur.Leader, topic, p.ID) {
		return cur, kerr.ElectionNotNeeded
	}
	if p.ModRevision == 0 {
		return cur, kerr.EligibleLeadersNotAvailable
	}
	next, _, ok := planFailover(img, topic, p, func() bool { return true })
	if !ok || next.Leader < 0 {
		return cur, kerr.EligibleLeadersNotAvailable
	}
	return next, nil
}

// planRebalance is the periodic preferred-leader check: for each preferred
// replica whose ratio of partitions led by someone else exceeds
// percentage, elect it where planPreferred can.
func planRebalance(img *etcd.Image, percentage int32) []partitionChange {
	type counts struct{ total, misplaced int }
	perBroker := map[int32]*counts{}
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			c := perBroker[p.Replicas[0]]
			if c == nil {
				c = &counts{}
				perBroker[p.Replicas[0]] = c
			}
			c.total++
			if p.State.Leader != p.Replicas[0] {
				c.misplaced++
			}
		}
	}
	var out []partitionChange
	for _, t := range sortedTopics(img) {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			c := perBroker[p.Replicas[0]]
			if float64(c.misplaced)/float64(c.total) <= float64(percentage)/100 {
				continue
			}
			if next, err := planPreferred(img, t.Name, p); err == nil {
				out = append(out, partitionChange{topic: t.Name, partition: p.ID, modRev: p.ModRevision,
					old: p.State, next: next, reason: reasonAutoRebalance})
			}
		}
	}
	return out
}

func sortedTopics(img *etcd.Image) []*etcd.Topic {
	ts := make([]*etcd.Topic, 0, len(img.Topics))
	for _, t := range img.Topics {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// firstReplica returns the first replica, in assignment order, that ok
// accepts, or -1.
func firstReplica(replicas []int32, ok func(int32) bool) int32 {
	for _, r := range replicas {
		if ok(r) {
			return r
		}
	}
	return -1
}

// filterIDs returns the ids keep accepts, in order, in a new slice.
func filterIDs(ids []int32, keep func(int32) bool) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}

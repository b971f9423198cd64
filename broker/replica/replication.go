package replica

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kbroker/kbroker/storage"
)

// Replication state. A partition is either the leader — it accepts
// appends, tracks each follower's log end offset from its fetches, and
// moves the high watermark to the smallest log end offset in the ISR — or a
// follower, whose log is written only by the replica fetcher with the
// leader's batches and whose high watermark follows the leader's.
//
// ISR changes are proposed here (ISRChange) and carried out by the broker
// as a compare-and-swap on the partition's etcd key; the partition adopts
// the new ISR when the metadata image shows it (SetISR). While an addition
// is pending, the high watermark already waits for the new member, so it
// never advances past what the new ISR holds (KIP-497's maximal ISR).

// ReplicaSet is the assignment and ISR of a partition, as the metadata
// image states them.
type ReplicaSet struct {
	Replicas    []int32
	ISR         []int32
	ModRevision int64 // of the partition's etcd key, for ISR compare-and-swap
	MinISR      int   // min.insync.replicas
}

// ISRChange is a proposed ISR for the broker to write.
type ISRChange struct {
	Topic       string
	Partition   int32
	LeaderEpoch int32
	ISR         []int32
	ModRevision int64 // expected ModRevision of the partition key
}

// followerState is what the leader knows of one follower.
type followerState struct {
	leo              int64
	logStart         int64 // as its last fetch reported; -1 unknown
	lastCaughtUp     time.Time
	prevFetch        time.Time
	prevFetchLeaderE int64 // leader LEO at the follower's previous fetch
}

// hwWaiter is an acks=all produce waiting for the high watermark.
type hwWaiter struct {
	offset int64
	done   chan error
}

// EpochEndOffset is Kafka's (epoch, end offset) pair, for diverging-epoch
// truncation (KIP-320).
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// MakeLeader makes this broker the partition's leader at epoch: the epoch
// starts at the log end offset, followers start unknown.
func (p *Partition) MakeLeader(epoch int32, rs ReplicaSet, self int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.isLeader = true
	p.mu.leaderID = self
	p.mu.self = self
	p.mu.followers = map[int32]*followerState{}
	now := time.Now()
	for _, r := range rs.Replicas {
		if r != self {
			// Followers in the ISR get a grace period of one lag interval.
			p.mu.followers[r] = &followerState{leo: -1, logStart: -1, lastCaughtUp: now}
		}
	}
	p.setReplicaSetLocked(rs)
	if epoch != p.mu.leaderEpoch || len(p.epochs.Entries()) == 0 {
		p.mu.leaderEpoch = epoch
		if err := p.epochs.Assign(epoch, p.log.LogEndOffset()); err != nil {
			return err
		}
	}
	p.maybeAdvanceHighWatermarkLocked()
	return nil
}

// MakeFollower makes the partition follow leader at epoch. Pending acks=all
// produces fail with NOT_LEADER_OR_FOLLOWER.
func (p *Partition) MakeFollower(leader, epoch int32, rs ReplicaSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.isLeader = false
	p.mu.leaderID = leader
	p.mu.leaderEpoch = epoch
	p.mu.followers = nil
	p.mu.pendingAdds = nil
	p.setReplicaSetLocked(rs)
	p.failWaitersLocked(ErrNotLeader)
}

// SetISR adopts the replica set the metadata image shows (after an ISR
// change or a reassignment).
func (p *Partition) SetISR(rs ReplicaSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setReplicaSetLocked(rs)
	if p.mu.isLeader {
		p.maybeAdvanceHighWatermarkLocked()
	}
}

func (p *Partition) setReplicaSetLocked(rs ReplicaSet) {
	p.mu.replicas = slices.Clone(rs.Replicas)
	p.mu.isr = slices.Clone(rs.ISR)
	p.mu.isrModRev = rs.ModRevision
	p.mu.minISR = max(rs.MinISR, 1)
	p.mu.pendingAdds = slices.DeleteFunc(p.mu.pendingAdds, func(id int32) bool { return slices.Contains(p.mu.isr, id) })
}

// TopicName, PartitionIndex and TopicUUID identify the partition to the
// replica fetcher.
func (p *Partition) TopicName() string     { return p.Topic }
func (p *Partition) PartitionIndex() int32 { return p.Index }
func (p *Partition) TopicUUID() [16]byte   { return p.TopicID }

// StateRevision is the ModRevision of the partition state last applied
// (MakeLeader, MakeFollower, SetISR); the broker re-applies when it moves.
func (p *Partition) StateRevision() int64 { return p.stateRev.Load() }

// SetStateRevision records the partition state revision applied.
func (p *Partition) SetStateRevision(rev int64) { p.stateRev.Store(rev) }

// MinInsyncReplicas is the topic's min.insync.replicas.
func (p *Partition) MinInsyncReplicas() int { return max(p.cfg.Load().MinInsyncReplicas, 1) }

// IsLeader reports whether this broker leads the partition.
func (p *Partition) IsLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.isLeader
}

// Leader is the partition's leader as this broker last learned it.
func (p *Partition) Leader() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.leaderID
}

// ISR is the committed in-sync replica set.
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.mu.isr)
}

// EnoughReplicas reports whether the ISR meets min.insync.replicas, the
// precondition of an acks=all append.
func (p *Partition) EnoughReplicas() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mu.isr) >= p.mu.minISR
}

// maybeAdvanceHighWatermarkLocked moves the high watermark to the smallest
// log end offset among the leader and the (maximal) ISR.
func (p *Partition) maybeAdvanceHighWatermarkLocked() {
	hw := p.log.LogEndOffset()
	for _, id := range p.mu.isr {
		if id == p.mu.self {
			continue
		}
		fs := p.mu.followers[id]
		if fs == nil || fs.leo < 0 {
			return // an ISR member whose position is unknown holds the HW
		}
		hw = min(hw, fs.leo)
	}
	for _, id := range p.mu.pendingAdds {
		if fs := p.mu.followers[id]; fs != nil && fs.leo >= 0 {
			hw = min(hw, fs.leo)
		}
	}
	if hw > p.highWatermark.Load() {
		p.advanceHighWatermark(hw)
		p.releaseWaitersLocked(hw)
		p.wakeWaiters()
	}
}

// FollowerFetch is a follower's fetch as the leader sees it.
type FollowerFetch struct {
	ReplicaID          int32
	FetchOffset        int64
	LogStartOffset     int64 // the follower's, -1 when not sent (v<5)
	LastFetchedEpoch   int32
	CurrentLeaderEpoch int32
	MaxBytes           int
}

// FollowerFetchResult is the leader's answer to one follower partition.
type FollowerFetchResult struct {
	Data           storage.ReadResult
	HighWatermark  int64
	LogStartOffset int64
	Diverging      *EpochEndOffset // set: the follower must truncate first
	ISRChange      *ISRChange      // set: the broker should write it
}

// ReadForFollower serves a follower's fetch: it checks the follower's last
// fetched epoch against the leader's history (KIP-320), records the
// follower's position (its fetch offset is its log end offset), advances the
// high watermark, proposes adding a caught-up follower to the ISR, and reads
// whole batches up to the log end offset.
func (p *Partition) ReadForFollower(f FollowerFetch, now time.Time) (FollowerFetchResult, error) {
	res := FollowerFetchResult{HighWatermark: -1, LogStartOffset: -1}
	p.mu.Lock()
	if !p.mu.isLeader || p.mu.closed {
		p.mu.Unlock()
		return res, ErrNotLeader
	}
	if e := f.CurrentLeaderEpoch; e >= 0 && e != p.mu.leaderEpoch {
		p.mu.Unlock()
		if e < p.LeaderEpoch() {
			return res, ErrFencedLeaderEpoch
		}
		return res, ErrUnknownLeaderEpoch
	}
	fs := p.mu.followers[f.ReplicaID]
	if fs == nil {
		p.mu.Unlock()
		return res, fmt.Errorf("%w: broker %d", ErrNotReplica, f.ReplicaID)
	}
	leo := p.log.LogEndOffset()
	res.HighWatermark = p.highWatermark.Load()
	res.LogStartOffset = p.log.LogStartOffset()
	if f.LastFetchedEpoch >= 0 && f.FetchOffset > 0 {
		epoch, end := p.epochs.EndOffsetFor(f.LastFetchedEpoch, leo)
		if epoch < f.LastFetchedEpoch || end < f.FetchOffset {
			p.mu.Unlock()
			res.Diverging = &EpochEndOffset{Epoch: epoch, EndOffset: end}
			return res, nil
		}
	}
	if f.FetchOffset > leo || f.FetchOffset < res.LogStartOffset {
		p.mu.Unlock()
		return res, fmt.Errorf("%w: follower fetch at %d, log [%d, %d]", storage.ErrOffsetOutOfRange, f.FetchOffset, res.LogStartOffset, leo)
	}
	// Kafka's caught-up rule: at the leader's end now, or at least where
	// the leader's end was at the previous fetch.
	switch {
	case f.FetchOffset >= leo:
		fs.lastCaughtUp = now
	case f.FetchOffset >= fs.prevFetchLeaderE && !fs.prevFetch.IsZero():
		fs.lastCaughtUp = fs.prevFetch
	}
	fs.prevFetch, fs.prevFetchLeaderE = now, leo
	fs.leo, fs.logStart = f.FetchOffset, f.LogStartOffset
	p.maybeAdvanceHighWatermarkLocked()
	res.HighWatermark = p.highWatermark.Load()
	if !slices.Contains(p.mu.isr, f.ReplicaID) && !slices.Contains(p.mu.pendingAdds, f.ReplicaID) &&
		fs.leo >= res.HighWatermark && p.epochStartLocked() <= fs.leo {
		p.mu.pendingAdds = append(p.mu.pendingAdds, f.ReplicaID)
		isr := append(slices.Clone(p.mu.isr), f.ReplicaID)
		slices.Sort(isr)
		res.ISRChange = &ISRChange{Topic: p.Topic, Partition: p.Index, LeaderEpoch: p.mu.leaderEpoch, ISR: isr, ModRevision: p.mu.isrModRev}
	}
	p.mu.Unlock()
	data, err := p.log.Read(f.FetchOffset, f.MaxBytes, leo)
	if err != nil {
		return res, err
	}
	res.Data = data
	return res, nil
}

// HighWatermarkBehindEpoch reports, on a leader, whether its high
// watermark has yet to reach the start of its leader epoch: a new leader
// learns the committed offset only as its followers report, and until then
// its "latest offset" would go backwards (Kafka answers ListOffsets with
// OFFSET_NOT_AVAILABLE meanwhile, so clients retry).
func (p *Partition) HighWatermarkBehindEpoch() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.isLeader && p.epochStartLocked() > p.highWatermark.Load()
}

// epochStartLocked is the offset where the current leader epoch began: a
// follower joins the ISR only once it has everything from before it.
func (p *Partition) epochStartLocked() int64 {
	entries := p.epochs.Entries()
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Epoch == p.mu.leaderEpoch {
			return entries[i].StartOffset
		}
	}
	return 0
}

// ISRChangeFailed forgets a pending addition whose write did not happen,
// so a later fetch proposes it again.
func (p *Partition) ISRChangeFailed(c ISRChange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.pendingAdds = slices.DeleteFunc(p.mu.pendingAdds, func(id int32) bool { return !slices.Contains(p.mu.isr, id) && slices.Contains(c.ISR, id) })
}

// LaggingISR proposes removing ISR followers that have not caught up within
// maxLag (replica.lag.time.max.ms). nil when nothing changes.
func (p *Partition) LaggingISR(now time.Time, maxLag time.Duration) *ISRChange {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.isLeader || p.mu.closed {
		return nil
	}
	var keep []int32
	for _, id := range p.mu.isr {
		if id == p.mu.self {
			keep = append(keep, id)
			continue
		}
		fs := p.mu.followers[id]
		if fs != nil && now.Sub(fs.lastCaughtUp) <= maxLag {
			keep = append(keep, id)
		}
	}
	if len(keep) == len(p.mu.isr) {
		return nil
	}
	return &ISRChange{Topic: p.Topic, Partition: p.Index, LeaderEpoch: p.mu.leaderEpoch, ISR: keep, ModRevision: p.mu.isrModRev}
}

// WaitForHighWatermark blocks an acks=all produce until the high watermark
// reaches offset, the partition stops being the leader, or ctx ends. Then
// the ISR must still meet min.insync.replicas
// (NOT_ENOUGH_REPLICAS_AFTER_APPEND otherwise).
func (p *Partition) WaitForHighWatermark(ctx context.Context, offset int64) error {
	p.mu.Lock()
	if !p.mu.isLeader {
		p.mu.Unlock()
		return ErrNotLeader
	}
	var done chan error
	if p.highWatermark.Load() < offset {
		w := &hwWaiter{offset: offset, done: make(chan error, 1)}
		p.mu.hwWaiters = append(p.mu.hwWaiters, w)
		done = w.done
	}
	p.mu.Unlock()
	if done != nil {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ErrTimedOut
		}
	}
	if !p.EnoughReplicas() {
		return ErrNotEnoughReplicasAfterAppend
	}
	return nil
}

func (p *Partition) releaseWaitersLocked(hw int64) {
	keep := p.mu.hwWaiters[:0]
	for _, w := range p.mu.hwWaiters {
		if w.offset <= hw {
			w.done <- nil
		} else {
			keep = append(keep, w)
		}
	}
	clear(p.mu.hwWaiters[len(keep):])
	p.mu.hwWaiters = keep
}

func (p *Partition) failWaitersLocked(err error) {
	for _, w := range p.mu.hwWaiters {
		w.done <- err
	}
	p.mu.hwWaiters = nil
}

// FollowerState is what the replica fetcher sends for this partition.
func (p *Partition) FollowerState() (fetchOffset int64, lastFetchedEpoch, currentLeaderEpoch int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lastFetchedEpoch, _ = p.epochs.LatestEpoch()
	return p.log.LogEndOffset(), lastFetchedEpoch, p.mu.leaderEpoch
}

// AppendAsFollower appends batches fetched from the leader, with the
// leader's offsets and epochs, then follows the leader's high watermark.
func (p *Partition) AppendAsFollower(batches []byte, leaderHW int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.isLeader || p.mu.closed {
		return ErrNotFollower
	}
	if len(batches) > 0 {
		if err := p.log.Append(batches); err != nil {
			return err
		}
	}
	if hw := min(leaderHW, p.log.LogEndOffset()); hw > p.highWatermark.Load() {
		p.advanceHighWatermark(hw)
		p.wakeWaiters() // consumers long-polling this follower (KIP-392)
	}
	return nil
}

// EndOffsetForEpoch is this replica's (epoch, end offset) for a leader
// epoch, for diverging-epoch truncation and OffsetForLeaderEpoch.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.epochs.EndOffsetFor(epoch, p.log.LogEndOffset())
}

// TruncateTo removes everything at and above offset (a follower whose log
// diverged from the new leader's).
func (p *Partition) TruncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.isLeader {
		return ErrNotFollower
	}
	if err := p.log.TruncateTo(offset); err != nil {
		return err
	}
	if p.highWatermark.Load() > offset {
		p.highWatermark.Store(offset)
	}
	return nil
}

// TruncateFullyAndStartAt empties the log and restarts it at offset (a
// follower that fell below the leader's log start offset).
func (p *Partition) TruncateFullyAndStartAt(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.isLeader {
		return ErrNotFollower
	}
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		return err
	}
	p.highWatermark.Store(offset)
	return nil
}

// ReplicaView is one replica's position as the leader sees it, for choosing
// where a consumer should read (KIP-392).
type ReplicaView struct {
	ID            int32
	LogEndOffset  int64
	SinceCaughtUp time.Duration // 0 for the leader
}

// ReadReplicaCandidates lists, on the leader, the replicas a consumer at
// offset may be sent to read from: the leader itself (first) and each ISR
// follower whose log holds offset. Like Kafka since KAFKA-14372, followers
// outside the ISR are never chosen, so a lagging replica cannot hold a
// consumer back indefinitely. ok is false on a follower.
func (p *Partition) ReadReplicaCandidates(offset int64, now time.Time) (views []ReplicaView, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.isLeader || p.mu.closed {
		return nil, false
	}
	views = append(views, ReplicaView{ID: p.mu.self, LogEndOffset: p.log.LogEndOffset()})
	for _, id := range p.mu.isr {
		fs := p.mu.followers[id]
		if id == p.mu.self || fs == nil || fs.leo < offset || fs.logStart > offset {
			continue
		}
		views = append(views, ReplicaView{ID: id, LogEndOffset: fs.leo, SinceCaughtUp: now.Sub(fs.lastCaughtUp)})
	}
	return views, true
}

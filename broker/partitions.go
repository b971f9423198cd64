package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/etcd"
	"github.com/kbroker/kbroker/storage"
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// partitionSet owns the map of partitions hosted by this broker. Partitions
// are opened lazily when a request first needs one that the metadata image
// says this broker leads, and closed or deleted when the image says so.
//
// Lock order: partitionSet.mu → hostedEntry.mu is never taken in that
// order; mu guards only the map and is held for no I/O. Opening a partition
// (recovery after a crash can take long) and applying metadata to it happen
// under that partition's hostedEntry.mu alone, so they stall only requests
// for that partition.
type partitionSet struct {
	b *Broker
	// recovered is set once openExisting has opened every partition on
	// disk: only then may a shutdown mark the log dirs clean.
	recovered atomic.Bool
	mu        struct {
		sync.Mutex
		parts map[topicPartition]*hostedEntry
		// cleanDirs records, per log dir, whether the last shutdown was clean,
		// so the first open of each partition can skip full recovery.
		cleanDirs map[string]bool
		// savedHW holds, per log dir, the high watermarks read from its
		// replication-offset-checkpoint for partitions not opened yet; an
		// entry goes when its partition opens, and the rest once every
		// hosted partition is open (openExisting).
		savedHW map[string]map[storage.TopicPartition]int64
		// offline holds the log dirs taken offline after an I/O error
		// (cleaned paths), each with the partitions that were in it; see
		// log_dirs.go.
		offline map[string][]etcd.PartitionRef
	}
}

// hostedEntry is one partition's place in the set. mu serialises opening
// the partition and applying metadata to it; p is nil until it is open.
type hostedEntry struct {
	mu sync.Mutex
	p  atomic.Pointer[replica.Partition]
}

func newPartitionSet(b *Broker, cleanDirs map[string]bool) *partitionSet {
	s := &partitionSet{b: b}
	s.mu.parts = make(map[topicPartition]*hostedEntry)
	s.mu.cleanDirs = cleanDirs
	s.mu.savedHW = make(map[string]map[storage.TopicPartition]int64)
	s.mu.offline = make(map[string][]etcd.PartitionRef)
	for _, d := range b.cfg.LogDirs {
		hws, err := storage.ReadOffsetCheckpoint(d, storage.ReplicationOffsetCheckpointFile)
		if err != nil {
			// Not fatal: high watermarks restart at the log start and
			// catch up as followers report, as before the checkpoint existed.
			b.logger.Warn("ignoring unreadable high watermark checkpoint; high watermarks will catch up from replicas", "dir", d, "err", err)
			continue
		}
		s.mu.savedHW[filepath.Clean(d)] = hws // keyed as filepath.Dir of a partition dir
	}
	return s
}

// errNotLeader means the image does not make this broker the partition's leader.
var errNotLeader = fmt.Errorf("broker: not the leader for this partition")

// errUnknownPartition means the topic or partition does not exist.
var errUnknownPartition = fmt.Errorf("broker: unknown topic or partition")

// leaderFor returns the partition if this broker leads it, opening it on
// first use.
func (s *partitionSet) leaderFor(topic string, partition int32) (*replica.Partition, error) {
	p, err := s.hosted(topic, partition)
	if err != nil {
		return nil, err
	}
	if !p.IsLeader() {
		return nil, errNotLeader
	}
	return p, nil
}

// readableFor returns the partition for a consumer's read: the leader's
// replica, or with followersToo any replica hosted here (KIP-392).
func (s *partitionSet) readableFor(topic string, partition int32, followersToo bool) (*replica.Partition, error) {
	if !followersToo {
		return s.leaderFor(topic, partition)
	}
	return s.hosted(topic, partition)
}

// hosted returns the partition if this broker holds a replica of it,
// opening it on first use and bringing its role (leader or follower), ISR
// and configuration up to the metadata image.
func (s *partitionSet) hosted(topic string, partition int32) (*replica.Partition, error) {
	img := s.b.view.Image()
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, errUnknownPartition
	}
	pm := t.Partitions[partition]
	if !slices.Contains(pm.Replicas, s.b.nodeID) {
		return nil, errNotLeader
	}
	tp := topicPartition{topic, partition}
	s.mu.Lock()
	if len(s.mu.offline) > 0 && s.partitionOfflineLocked(tp) {
		s.mu.Unlock()
		return nil, errLogDirOffline
	}
	e := s.mu.parts[tp]
	if e == nil {
		e = &hostedEntry{}
		s.mu.parts[tp] = e
	}
	s.mu.Unlock()
	if p := e.p.Load(); p != nil && p.TopicID == t.ID && p.ConfigRevision() == t.ModRevision && p.StateRevision() == pm.ModRevision {
		return p, nil // open and up to date: the common case takes no partition lock
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.p.Load()
	if p != nil && p.TopicID != t.ID {
		// A topic of the same name was deleted and recreated.
		e.p.Store(nil)
		s.b.fetchers.Unfollow(p)
		go p.Delete()
		p = nil
	}
	if p == nil {
		var err error
		if p, err = s.open(tp, t); err != nil {
			return nil, err
		}
		s.mu.Lock()
		current := s.mu.parts[tp] == e
		if current {
			e.p.Store(p)
		}
		s.mu.Unlock()
		if !current {
			// reconcile dropped the partition while it opened.
			s.discard(p)
			return nil, errNotLeader
		}
	}
	if p.ConfigRevision() != t.ModRevision {
		// Topic configs changed: apply before serving, so a request right
		// after AlterConfigs sees the new limits.
		if cfg, err := s.partitionConfig(t); err == nil {
			p.SetConfigAt(cfg, t.ModRevision)
		}
	}
	if p.StateRevision() != pm.ModRevision {
		if err := s.applyStateLocked(p, pm); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// open opens (and after an unclean stop recovers) a partition's log; the
// caller holds its entry's lock, not s.mu.
func (s *partitionSet) open(tp topicPartition, t *etcd.Topic) (*replica.Partition, error) {
	cfg, err := s.partitionConfig(t)
	if err != nil {
		return nil, err
	}
	dir := s.dirFor(tp)
	if s.dirOffline(filepath.Dir(dir)) {
		return nil, errLogDirOffline
	}
	if id, err := storage.ReadPartitionMetadata(dir); err == nil && id != t.ID {
		// Data left by an earlier incarnation of this topic name.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove stale partition dir %s: %w", dir, err)
		}
	}
	s.mu.Lock()
	clean := s.mu.cleanDirs[filepath.Dir(dir)]
	s.mu.Unlock()
	p, err := replica.Open(dir, tp.topic, tp.partition, t.ID, cfg, clean, s.logOptions(filepath.Dir(dir)))
	if err != nil {
		return nil, err
	}
	p.SetConfigAt(cfg, t.ModRevision)
	s.mu.Lock()
	if saved := s.mu.savedHW[filepath.Dir(dir)]; saved != nil {
		key := storage.TopicPartition{Topic: tp.topic, Partition: tp.partition}
		if hw, ok := saved[key]; ok {
			p.RestoreHighWatermark(hw)
			delete(saved, key)
		}
	}
	s.mu.Unlock()
	return p, nil
}

// discard closes a partition opened for an entry that reconcile removed
// meanwhile, deleting its data if its topic is gone.
func (s *partitionSet) discard(p *replica.Partition) {
	t := s.b.view.Image().Topics[p.Topic]
	var err error
	if t == nil || t.ID != p.TopicID || int(p.Index) >= len(t.Partitions) {
		err = p.Delete()
	} else {
		err = p.Close()
	}
	if err != nil {
		s.b.logger.Error("close partition dropped while opening", "topic", p.Topic, "partition", p.Index, "err", err)
	}
}

// applyStateLocked makes the partition leader or follower as the image
// says; the caller holds the partition's hostedEntry.mu.
func (s *partitionSet) applyStateLocked(p *replica.Partition, pm etcd.Partition) error {
	st := pm.State
	rs := replica.ReplicaSet{Replicas: pm.Replicas, ISR: st.ISR, ModRevision: pm.ModRevision, MinISR: p.MinInsyncReplicas()}
	switch {
	case st.Leader == s.b.nodeID && (!p.IsLeader() || p.LeaderEpoch() != st.LeaderEpoch):
		s.b.fetchers.Unfollow(p)
		if err := p.MakeLeader(st.LeaderEpoch, rs, s.b.nodeID); err != nil {
			return fmt.Errorf("become leader of %s-%d: %w", p.Topic, p.Index, err)
		}
		s.b.logger.Info("leading partition", "topic", p.Topic, "partition", p.Index, "leader_epoch", st.LeaderEpoch, "isr", st.ISR)
	case st.Leader != s.b.nodeID && (p.IsLeader() || p.Leader() != st.Leader || p.LeaderEpoch() != st.LeaderEpoch):
		p.MakeFollower(st.Leader, st.LeaderEpoch, rs)
		if st.Leader >= 0 {
			s.b.fetchers.Follow(st.Leader, p)
		} else {
			s.b.fetchers.Unfollow(p)
		}
		s.b.logger.Info("following partition", "topic", p.Topic, "partition", p.Index, "leader", st.Leader, "leader_epoch", st.LeaderEpoch)
	default:
		p.SetISR(rs)
	}
	p.SetStateRevision(pm.ModRevision)
	return nil
}

// dirFor places a partition: an existing directory in any log dir wins,
// otherwise the online log dir hosting the fewest partitions.
func (s *partitionSet) dirFor(tp topicPartition) string {
	name := storage.PartitionDirName(tp.topic, tp.partition)
	dirs := s.b.cfg.LogDirs
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	if len(dirs) == 1 {
		return filepath.Join(dirs[0], name)
	}
	// A new partition goes to the online log dir holding the fewest, as
	// Kafka's LogManager picks; counted from the open partitions rather
	// than by listing directories, which made creating N partitions cost
	// O(N²).
	count := make(map[string]int, len(dirs))
	s.mu.Lock()
	for _, e := range s.mu.parts {
		if p := e.p.Load(); p != nil {
			count[filepath.Dir(p.Dir)]++
		}
	}
	best := ""
	for _, d := range dirs {
		if _, off := s.mu.offline[filepath.Clean(d)]; off {
			continue
		}
		if best == "" || count[filepath.Clean(d)] < count[filepath.Clean(best)] {
			best = d
		}
	}
	s.mu.Unlock()
	if best == "" {
		best = dirs[0] // every dir is offline: open refuses it
	}
	return filepath.Join(best, name)
}

func (s *partitionSet) partitionConfig(t *etcd.Topic) (replica.Config, error) {
	tc, err := config.ResolveTopicConfig(s.b.cfg, t.Configs)
	if err != nil {
		return replica.Config{}, fmt.Errorf("topic %s config: %w", t.Name, err)
	}
	return replicaConfig(tc, int64(s.b.cfg.ProducerIDExpirationMs)), nil
}

func replicaConfig(tc config.TopicConfig, producerIDExpirationMs int64) replica.Config {
	return replica.Config{
		Log: storage.LogConfig{
			SegmentBytes:          int64(tc.SegmentBytes),
			SegmentMs:             tc.SegmentMs,
			IndexIntervalBytes:    int(tc.IndexIntervalBytes),
			SegmentIndexBytes:     int(tc.SegmentIndexBytes),
			FlushIntervalMessages: tc.FlushMessages,
			FlushIntervalMs:       tc.FlushMs,

			Delete:                 tc.CleanupPolicy.Delete,
			Compact:                tc.CleanupPolicy.Compact,
			RetentionMs:            tc.RetentionMs,
			RetentionBytes:         tc.RetentionBytes,
			FileDeleteDelayMs:      tc.FileDeleteDelayMs,
			DeleteRetentionMs:      tc.DeleteRetentionMs,
			MinCompactionLagMs:     tc.MinCompactionLagMs,
			MinCleanableDirtyRatio: tc.MinCleanableDirtyRatio,
			ProducerIDExpirationMs: producerIDExpirationMs,
		},
		MaxBatchBytes:        int(tc.MaxMessageBytes),
		MinInsyncReplicas:    int(tc.MinInsyncReplicas),
		LogAppendTime:        tc.LogAppendTime,
		TimestampBeforeMaxMs: tc.MessageTimestampBeforeMaxMs,
		TimestampAfterMaxMs:  tc.MessageTimestampAfterMaxMs,
	}
}

// reconcile applies a new metadata image: partitions of deleted topics are
// deleted from disk, partitions no longer assigned here are closed, and
// every assigned partition is opened with its current role.
func (s *partitionSet) reconcile(img *etcd.Image) {
	s.mu.Lock()
	var drop, gone []*replica.Partition
	for tp, e := range s.mu.parts {
		t := img.Topics[tp.topic]
		p := e.p.Load()
		switch {
		case t == nil || int(tp.partition) >= len(t.Partitions) || (p != nil && t.ID != p.TopicID):
			delete(s.mu.parts, tp) // an entry still opening finds itself dropped
			if p != nil {
				gone = append(gone, p)
			}
		case !slices.Contains(t.Partitions[tp.partition].Replicas, s.b.nodeID):
			delete(s.mu.parts, tp)
			if p != nil {
				drop = append(drop, p)
			}
		}
	}
	s.mu.Unlock()
	for _, p := range append(gone, drop...) {
		s.b.fetchers.Unfollow(p)
	}
	for _, p := range gone {
		s.b.logger.Info("deleting partition of deleted topic", "topic", p.Topic, "partition", p.Index)
		if err := p.Delete(); err != nil {
			s.b.logger.Error("delete partition", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
	for _, p := range drop {
		if err := p.Close(); err != nil {
			s.b.logger.Error("close partition", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
	for _, t := range img.Topics {
		for _, pm := range t.Partitions {
			if !slices.Contains(pm.Replicas, s.b.nodeID) {
				continue
			}
			if _, err := s.hosted(t.Name, pm.ID); err != nil {
				s.logOpenFailure(s.b.view.Image(), t.Name, pm.ID, t.ID, err)
			}
		}
	}
}

// logOpenFailure reports a partition that reconcile or openExisting, acting
// on an image that lists it here, could not open. The latest image (which
// hosted reads, not the one being applied) may already have deleted the
// topic, recreated it under a new ID or shrunk it: opening raced
// DeleteTopics and the partition is gone by design, so that is logged at
// Debug. Any other failure is an Error.
func (s *partitionSet) logOpenFailure(latest *etcd.Image, topic string, partition int32, topicID [16]byte, err error) {
	if errors.Is(err, errNotLeader) {
		return // no longer a replica here; the next image closes it
	}
	t := latest.Topics[topic]
	if errors.Is(err, errUnknownPartition) || t == nil || t.ID != topicID || int(partition) >= len(t.Partitions) {
		s.b.logger.Debug("not opening partition of a deleted topic", "topic", topic, "partition", partition, "err", err)
		return
	}
	s.b.logger.Error("open partition", "topic", topic, "partition", partition, "err", err)
}

// openExisting deletes partition directories whose topic no longer exists
// (deleted while this broker was down), and opens every other partition on
// disk so recovery happens at start rather than on the first request. Each
// log dir is worked through by num.recovery.threads.per.data.dir
// goroutines, the dirs at once, with progress in the log for long
// recoveries. The broker already serves meanwhile: a request for a
// partition not opened yet opens it itself (see hosted). It stops early
// when ctx ends; recovered is set only when every partition is open.
func (s *partitionSet) openExisting(ctx context.Context, img *etcd.Image) {
	start := time.Now()
	var wg sync.WaitGroup
	var total atomic.Int64
	for _, d := range s.b.cfg.LogDirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			total.Add(int64(s.openDir(ctx, d, img)))
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	// Every hosted partition is open: what is left names partitions no
	// longer here.
	s.mu.Lock()
	clear(s.mu.savedHW)
	s.mu.Unlock()
	s.recovered.Store(true)
	s.b.logger.Info("opened the partitions on disk", "partitions", total.Load(), "took", time.Since(start).Round(time.Millisecond))
}

// recoveryProgressEvery is how often a long start-up logs its progress.
const recoveryProgressEvery = 10 * time.Second

// openDir is openExisting for one log dir; it returns how many partitions
// it opened.
func (s *partitionSet) openDir(ctx context.Context, d string, img *etcd.Image) int {
	entries, err := os.ReadDir(d)
	if err != nil {
		return 0
	}
	type todo struct {
		topic string
		part  int32
		id    [16]byte
	}
	var work []todo
	for _, e := range entries {
		topic, part, ok := storage.ParsePartitionDirName(e.Name())
		if !e.IsDir() || !ok {
			continue
		}
		dir := filepath.Join(d, e.Name())
		t := img.Topics[topic]
		id, idErr := storage.ReadPartitionMetadata(dir)
		if t == nil || (idErr == nil && id != t.ID) || int(part) >= len(t.Partitions) {
			s.b.logger.Info("removing data of a deleted topic", "dir", dir)
			if err := os.RemoveAll(dir); err != nil {
				s.b.logger.Error("remove stray partition dir", "dir", dir, "err", err)
			}
			continue
		}
		work = append(work, todo{topic, part, t.ID})
	}
	if len(work) == 0 {
		return 0
	}
	threads := max(1, int(s.b.cfg.NumRecoveryThreadsPerDataDir))
	s.b.logger.Info("opening partitions", "dir", d, "partitions", len(work), "threads", threads)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(threads, len(work)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(work) {
					return
				}
				w := work[i]
				if _, err := s.hosted(w.topic, w.part); err != nil {
					s.logOpenFailure(s.b.view.Image(), w.topic, w.part, w.id, err)
				}
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(recoveryProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return int(done.Load())
		case <-tick.C:
			s.b.logger.Info("still opening partitions", "dir", d, "opened", done.Load(), "of", len(work))
		}
	}
}

// checkpointHighWatermarks writes each log dir's replication-offset-checkpoint
// (Kafka's file of the high watermarks of the partitions in that dir), so
// that after a restart a leader serves what was committed at once instead
// of waiting for its followers to report, and coordinators load sooner.
func (s *partitionSet) checkpointHighWatermarks() {
	s.mu.Lock()
	byDir := make(map[string]map[storage.TopicPartition]int64, len(s.b.cfg.LogDirs))
	for _, d := range s.b.cfg.LogDirs {
		d = filepath.Clean(d) // as filepath.Dir of a partition dir
		hws := make(map[storage.TopicPartition]int64)
		for tp, hw := range s.mu.savedHW[d] {
			hws[tp] = hw // not opened yet: keep what was saved
		}
		byDir[d] = hws
	}
	for tp, e := range s.mu.parts {
		p := e.p.Load()
		if p == nil {
			continue
		}
		if hws := byDir[filepath.Dir(p.Dir)]; hws != nil {
			hws[storage.TopicPartition{Topic: tp.topic, Partition: tp.partition}] = p.HighWatermark()
		}
	}
	s.mu.Unlock()
	for d, hws := range byDir {
		if err := storage.WriteOffsetCheckpoint(d, storage.ReplicationOffsetCheckpointFile, hws); err != nil {
			s.b.logger.Error("high watermark checkpoint failed", "dir", d, "err", err)
		}
	}
}

// flushDue lets every partition apply its flush.ms policy, so a log that
// stopped receiving appends is still flushed on time.
func (s *partitionSet) flushDue() {
	for _, p := range s.all() {
		if err := p.FlushIfDue(); err != nil {
			s.b.logger.Error("scheduled flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
}

// all lists the open partitions.
func (s *partitionSet) all() []*replica.Partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]*replica.Partition, 0, len(s.mu.parts))
	for _, e := range s.mu.parts {
		if p := e.p.Load(); p != nil {
			parts = append(parts, p)
		}
	}
	return parts
}

// applyRetention deletes expired segments of every hosted partition. The
// log itself reports what it deleted, in one line with its start offset
// and the limits applied; only failures are logged here.
func (s *partitionSet) applyRetention() {
	now := time.Now()
	for _, p := range s.all() {
		if _, err := p.ApplyRetention(now); err != nil {
			s.b.logger.Error("retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
}

// removeExpiredProducers forgets idempotent producers idle for longer than
// producer.id.expiration.ms.
func (s *partitionSet) removeExpiredProducers() {
	now := time.Now()
	for _, p := range s.all() {
		if n := p.RemoveExpiredProducers(now); n > 0 {
			s.b.logger.Debug("expired idle producers", "topic", p.Topic, "partition", p.Index, "producers", n)
		}
	}
}

// compact cleans every hosted partition of a compacted topic that has
// enough dirty data.
func (s *partitionSet) compact() {
	now := time.Now()
	for _, p := range s.all() {
		stats, err := p.Compact(now)
		if err != nil {
			s.b.logger.Error("compaction failed", "topic", p.Topic, "partition", p.Index, "err", err)
		} else if stats.SegmentsCleaned > 0 {
			s.b.logger.Info("compacted log", "topic", p.Topic, "partition", p.Index,
				"segments", stats.SegmentsCleaned, "records_removed", stats.RecordsRemoved, "bytes_read", stats.BytesRead, "bytes_written", stats.BytesWritten)
		}
	}
}

// abandon closes every partition's files without the clean-shutdown
// marker (tests that simulate a crash; the data written stays on disk as
// after a process kill, since writes go to the page cache).
func (s *partitionSet) abandon() {
	s.mu.Lock()
	parts := s.mu.parts
	s.mu.parts = map[topicPartition]*hostedEntry{}
	s.mu.Unlock()
	for _, e := range parts {
		if p := e.p.Load(); p != nil {
			p.Close()
		}
	}
}

// closeAll checkpoints the high watermarks, then flushes and closes every
// partition (clean shutdown).
func (s *partitionSet) closeAll() error {
	s.checkpointHighWatermarks()
	s.mu.Lock()
	parts := s.mu.parts
	s.mu.parts = map[topicPartition]*hostedEntry{}
	s.mu.Unlock()
	var first error
	for _, e := range parts {
		p := e.p.Load()
		if p == nil {
			continue
		}
		if err := p.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/ratelog"
)

// ErrUnknownLeaderAddress is the error of a round whose source broker has
// no endpoint in the metadata image.
var ErrUnknownLeaderAddress = errors.New("fetcher: leader address unknown")

// ErrNoWholeBatch is logged for a partition whose fetched bytes hold no
// complete record batch.
var ErrNoWholeBatch = errors.New("fetcher: no whole record batch in fetched data")

// keyUnreachable is the rate-limit key of "cannot reach leader", shared by
// a leader with no known address and a failed round trip: one condition,
// logged once and then once a minute with the count of repeats.
const keyUnreachable = "unreachable"

// fetcher replicates the partitions followed from one source broker.
type fetcher struct {
	m      *Manager
	cfg    *Config
	source int32
	ctx    context.Context
	stop   context.CancelFunc
	wake   chan struct{}

	// applyMu is held while a response changes replicas' logs; Unfollow
	// waits on it.
	applyMu sync.Mutex

	// members counts the partitions the Manager assigns here, failed ones
	// included; guarded by Manager.mu.
	members int

	mu struct {
		sync.Mutex
		parts map[topicPartition]*partState
	}

	// limited logs the fetcher's repeating warnings: the first at once,
	// then one a minute per key with the count of those held back.
	limited *ratelog.Logger

	// Owned by the fetcher goroutine.
	cl   *kgo.Client
	addr string
}

func newFetcher(m *Manager, source int32) *fetcher {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fetcher{m: m, cfg: &m.cfg, source: source, ctx: ctx, stop: cancel, wake: make(chan struct{}, 1),
		limited: ratelog.New(m.cfg.Logger.With("leader", source), ratelog.Interval)}
	f.mu.parts = map[topicPartition]*partState{}
	return f
}

// wakeup nudges the goroutine to look at its partitions again.
func (f *fetcher) wakeup() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// sentPart is one partition as a request carried it; a response is applied
// only if the partition is still in that state (Kafka's check that the
// fetch offset and leader epoch did not move meanwhile).
type sentPart struct {
	ps               *partState
	gen              uint64 // ps.gen when the round began
	fetchOffset      int64
	lastFetchedEpoch int32
	leaderEpoch      int32
}

func (f *fetcher) run() {
	defer f.m.wg.Done()
	defer func() {
		if f.cl != nil {
			f.cl.Close()
		}
	}()
	for f.ctx.Err() == nil {
		parts, wait := f.fetchable(time.Now())
		if len(parts) == 0 {
			f.sleep(wait)
			continue
		}
		f.fetchOnce(parts)
	}
}

// fetchable lists the partitions not backing off, and how long until the
// first backoff ends (0: none is backing off).
func (f *fetcher) fetchable(now time.Time) ([]*sentPart, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*sentPart
	var wait time.Duration
	for _, ps := range f.mu.parts {
		if d := ps.delayUntil.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		out = append(out, &sentPart{ps: ps, gen: ps.gen})
	}
	return out, wait
}

// sleep waits for a wakeup, the end of d (if d > 0) or the fetcher's stop.
func (f *fetcher) sleep(d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-f.ctx.Done():
	case <-f.wake:
	case <-timer:
	}
}

// fetchOnce runs one Fetch round for parts.
func (f *fetcher) fetchOnce(parts []*sentPart) {
	cl, err := f.client()
	if err != nil {
		f.limited.Log(f.ctx, slog.LevelWarn, keyUnreachable, "cannot reach leader", "err", err)
		f.delay(parts, f.cfg.Backoff)
		return
	}
	req, sent, ids := f.buildRequest(parts)
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.MaxWait+f.cfg.RequestTimeout)
	resp, err := request(ctx, cl, req)
	cancel()
	if err != nil {
		if f.ctx.Err() != nil {
			return
		}
		// The round trip failed: the leader is down, unreachable or too
		// slow, a condition that lasts and is met every backoff.
		f.limited.Log(f.ctx, slog.LevelWarn, keyUnreachable, "cannot reach leader", "err", err)
		f.delay(parts, f.cfg.Backoff)
		return
	}
	fr := resp.(*kmsg.FetchResponse)
	if fr.ErrorCode != 0 {
		f.limited.Log(f.ctx, slog.LevelWarn, "fetch", "replica fetch failed", "err", kerr.ErrorForCode(fr.ErrorCode))
		f.delay(parts, f.cfg.Backoff)
		return
	}
	for _, s := range f.apply(fr, sent, ids) {
		f.resolveOutOfRange(cl, s)
	}
}

// client returns the kgo client for the source broker's current address,
// replacing it when the address changed.
func (f *fetcher) client() (*kgo.Client, error) {
	addr, ok := f.cfg.Address(f.source)
	if !ok {
		return nil, fmt.Errorf("broker %d: %w", f.source, ErrUnknownLeaderAddress)
	}
	if f.cl != nil && addr == f.addr {
		return f.cl, nil
	}
	if f.cl != nil {
		f.cl.Close()
		f.cl = nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID("broker-"+strconv.Itoa(int(f.cfg.NodeID))+"-fetcher-0"),
		kgo.DialTimeout(f.cfg.RequestTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("client for broker %d at %s: %w", f.source, addr, err)
	}
	f.cl, f.addr = cl, addr
	return cl, nil
}

// request sends req to the client's one seed broker — the leader — rather
// than letting kgo route it by metadata.
func request(ctx context.Context, cl *kgo.Client, req kmsg.Request) (kmsg.Response, error) {
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return nil, ErrUnknownLeaderAddress
	}
	return seeds[0].Request(ctx, req)
}

// buildRequest makes one sessionless Fetch for parts, filling in their
// fetch positions. Both the replica ID (v<15) and the replica state (v15+),
// and both topic names (v<13) and IDs (v13+), are filled: kmsg encodes what
// the negotiated version carries.
func (f *fetcher) buildRequest(parts []*sentPart) (*kmsg.FetchRequest, map[topicPartition]*sentPart, map[[16]byte]string) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = f.cfg.NodeID
	req.ReplicaState.ID = f.cfg.NodeID
	req.ReplicaState.Epoch = f.cfg.BrokerEpoch()
	req.MaxWaitMillis = int32(f.cfg.MaxWait.Milliseconds())
	req.MinBytes = f.cfg.MinBytes
	req.MaxBytes = f.cfg.MaxBytes
	req.IsolationLevel = 0
	req.SessionID = 0
	req.SessionEpoch = -1

	sent := make(map[topicPartition]*sentPart, len(parts))
	ids := map[[16]byte]string{}
	topicIdx := map[string]int{}
	for _, s := range parts {
		ps := s.ps
		off, lastEpoch, leaderEpoch := ps.r.FollowerState()
		s.fetchOffset, s.lastFetchedEpoch, s.leaderEpoch = off, lastEpoch, leaderEpoch
		sent[ps.tp] = s
		ids[ps.id] = ps.tp.topic
		i, ok := topicIdx[ps.tp.topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = ps.tp.topic
			t.TopicID = ps.id
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			topicIdx[ps.tp.topic] = i
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = ps.tp.partition
		p.CurrentLeaderEpoch = leaderEpoch
		p.FetchOffset = off
		p.LastFetchedEpoch = lastEpoch
		p.LogStartOffset = -1
		if ls, ok := ps.r.(interface{ LogStartOffset() int64 }); ok {
			p.LogStartOffset = ls.LogStartOffset()
		}
		p.PartitionMaxBytes = f.cfg.PartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	return req, sent, ids
}

// apply processes a Fetch response under applyMu and returns the
// partitions whose offsets were out of range, to resolve without the lock.
func (f *fetcher) apply(fr *kmsg.FetchResponse, sent map[topicPartition]*sentPart, ids map[[16]byte]string) []*sentPart {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	var outOfRange []*sentPart
	for i := range fr.Topics {
		rt := &fr.Topics[i]
		name := rt.Topic
		if fr.Version >= 13 {
			name = ids[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			s := sent[topicPartition{name, rp.Partition}]
			if s == nil || !f.current(s) {
				continue
			}
			if f.applyPartition(s, rp) {
				outOfRange = append(outOfRange, s)
			}
		}
	}
	return outOfRange
}

// current reports whether s's partition is still fetched here, in the
// state the request was built from.
func (f *fetcher) current(s *sentPart) bool {
	f.mu.Lock()
	ps := f.mu.parts[s.ps.tp]
	f.mu.Unlock()
	if ps != s.ps {
		return false
	}
	off, _, leaderEpoch := s.ps.r.FollowerState()
	return off == s.fetchOffset && leaderEpoch == s.leaderEpoch
}

// applyPartition handles one partition of a response; true means the
// offset was out of range.
func (f *fetcher) applyPartition(s *sentPart, rp *kmsg.FetchResponseTopicPartition) bool {
	err := kerr.ErrorForCode(rp.ErrorCode)
	switch {
	case err == nil && rp.DivergingEpoch.Epoch >= 0:
		f.truncateDiverging(s, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset)
	case err == nil:
		r := s.ps.r
		batches := wholeBatches(rp.RecordBatches)
		if len(batches) == 0 && len(rp.RecordBatches) > 0 {
			// Records but no whole batch: the next fetch would get the same
			// bytes at once, so pause instead of spinning.
			f.partitionError(s, "fetch", fmt.Errorf("%w: %d bytes without a whole record batch", ErrNoWholeBatch, len(rp.RecordBatches)))
			return false
		}
		if err := r.AppendAsFollower(batches, rp.HighWatermark); err != nil {
			f.fail(s, "append", err)
			return false
		}
		if f.cfg.OnLag != nil {
			leo, _, _ := r.FollowerState()
			f.cfg.OnLag(s.ps.tp.topic, s.ps.tp.partition, max(0, rp.HighWatermark-leo))
		}
	case errors.Is(err, kerr.OffsetOutOfRange):
		return true
	default:
		f.partitionError(s, "fetch", err)
	}
	return false
}

// partitionError backs a partition off after an error from the leader.
// Leadership errors are expected while the metadata image catches up with
// a leader change, so they are logged at Info.
func (f *fetcher) partitionError(s *sentPart, op string, err error) {
	level := slog.LevelWarn
	switch {
	case errors.Is(err, kerr.FencedLeaderEpoch), errors.Is(err, kerr.NotLeaderForPartition),
		errors.Is(err, kerr.UnknownLeaderEpoch), errors.Is(err, kerr.UnknownTopicOrPartition),
		errors.Is(err, kerr.UnknownTopicID), errors.Is(err, kerr.ReplicaNotAvailable):
		level = slog.LevelInfo
	}
	tp := s.ps.tp
	f.limited.Log(f.ctx, level, op+" "+tp.topic+"-"+strconv.Itoa(int(tp.partition)), "replica fetch partition error",
		"topic", tp.topic, "partition", tp.partition, "leader_epoch", s.leaderEpoch, "err", err)
	f.delay([]*sentPart{s}, f.cfg.Backoff)
}

// fail drops a partition whose log could not be changed (it may have
// become leader meanwhile, or its log dir failed); Follow adds it back.
// A Follow since the round began supersedes the failure.
func (f *fetcher) fail(s *sentPart, op string, err error) {
	ps := s.ps
	f.cfg.Logger.Warn("replica fetch stopped for partition", "leader", f.source,
		"topic", ps.tp.topic, "partition", ps.tp.partition, "op", op, "err", err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.parts[ps.tp] == ps && ps.gen == s.gen {
		delete(f.mu.parts, ps.tp)
		ps.failed = true
	}
}

// delay backs parts off for d, unless a Follow since their round began
// (a new leader epoch, typically) has made the outcome moot.
func (f *fetcher) delay(parts []*sentPart, d time.Duration) {
	until := time.Now().Add(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range parts {
		if ps := s.ps; f.mu.parts[ps.tp] == ps && ps.gen == s.gen {
			ps.delayUntil = until
		}
	}
}

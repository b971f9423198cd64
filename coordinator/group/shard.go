package group

import (
	"context"
	"log/slog"
	"regexp"
	"sort"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Log is the shard's __consumer_offsets partition, implemented by the
// broker (the contract of runtime.Log). A failed Append fails the op with a
// retriable error such as NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE,
// mapped as Kafka maps storage errors: wrap a *kerr.Error to choose. The
// base offset Append returns is remembered by replay for each record: it
// decides between a transactional and a plain commit of one partition.
// Transactional batches (TxnOffsetCommit) carry the client's producer ID
// and epoch and sequence -1: the log checks the epoch (fencing a zombie
// producer) but, as for Kafka's coordinator appends, not the sequence.
type Log interface {
	runtime.Log
}

// Shard coordinates the groups of one __consumer_offsets partition. All its
// group state is owned by one goroutine, its runtime.Loop; see the package
// doc.
type Shard struct {
	partition int32
	cfg       Config
	logger    *slog.Logger
	loop      *runtime.Loop

	// Owned by the loop goroutine.
	groups         map[string]*group
	retentionTimer *time.Timer
	busy           map[string][]func() // consumer groups with a write in flight -> waiting ops
	regexCache     map[string]*regexp.Regexp
	txn            txnState // pending transactional offsets (txn.go)
}

// NewShard starts the shard of __consumer_offsets partition `partition`.
// Until Load completes, requests answer COORDINATOR_LOAD_IN_PROGRESS
// (Heartbeat answers NONE, as in Kafka).
func NewShard(partition int32, log Log, cfg Config, logger *slog.Logger) *Shard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Shard{
		partition:  partition,
		cfg:        cfg.withDefaults(),
		logger:     logger,
		groups:     map[string]*group{},
		busy:       map[string][]func(){},
		regexCache: map[string]*regexp.Regexp{},
		txn:        newTxnState(),
	}
	s.loop = runtime.Start(runtime.Config{
		Topic:     "__consumer_offsets",
		Partition: partition,
		Log:       log,
		Replay:    s.replay,
		Stop:      s.stopTimers,
		Now:       s.cfg.Now,
		Logger:    logger,
		Errors:    runtime.Errors{Closed: ErrClosed, AlreadyLoaded: ErrAlreadyLoaded, CorruptLog: ErrCorruptLog},
	})
	return s
}

func (s *Shard) stopTimers() {
	if s.retentionTimer != nil {
		s.retentionTimer.Stop()
	}
	for _, g := range s.groups {
		s.stopGroupTimers(g)
		for _, m := range g.members {
			stopMemberTimer(m)
		}
		for _, t := range g.pending {
			t.Stop()
		}
		stopConsumerTimers(g.cg)
	}
}

func (s *Shard) stopGroupTimers(g *group) {
	g.joinToken++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
	g.syncToken++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}

// Close stops the shard (its broker no longer leads the partition). Waiting
// and later requests answer NOT_COORDINATOR. It waits for in-flight appends,
// whose context it cancels.
func (s *Shard) Close() { s.loop.Close() }

// Loaded reports whether Load has completed; until then every request
// answers COORDINATOR_LOAD_IN_PROGRESS (ListGroups callers check it to set
// the response error).
func (s *Shard) Loaded() bool { return s.loop.Loaded() }

func (s *Shard) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// write appends recs as one batch and, once the log committed them,
// replays them and calls then(0) on the loop; on failure then gets the
// Kafka error code and nothing is replayed. Appends are chained, so batches
// reach the log (and are replayed) in submission order while the loop
// keeps serving heartbeats.
func (s *Shard) write(recs []runtime.Record, forOffsets bool, then func(code int16)) {
	s.writeAs(recs, runtime.NoProducer, forOffsets, then)
}

func (s *Shard) writeAs(recs []runtime.Record, p runtime.Producer, forOffsets bool, then func(code int16)) {
	s.loop.Append(recs, p, func(err error) {
		if err != nil {
			then(appendErrorCode(err, forOffsets))
			return
		}
		then(0)
	})
}

// Load replays the partition from its log start offset to its high
// watermark, then starts serving. Requests that arrive meanwhile answer
// COORDINATOR_LOAD_IN_PROGRESS.
func (s *Shard) Load(ctx context.Context) error {
	st, err := s.loop.Load(ctx, s.finishLoad)
	if err != nil {
		return err
	}
	s.logger.Info("loaded group coordinator state", "partition", s.partition, "from_offset", st.FromOffset, "to_offset", st.ToOffset, "records", st.Records)
	return nil
}

// finishLoad starts serving: loaded members get a session deadline (as
// Kafka schedules heartbeats for loaded groups), and the retention check
// starts.
func (s *Shard) finishLoad() {
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := s.groups[id]
		for _, mid := range g.order {
			s.scheduleHeartbeat(g, g.members[mid])
		}
		s.startConsumerSessions(g)
	}
	s.scheduleRetention()
}

package broker

// Fetch: v4-18
//
// Behavior:
// * Whole batches from the one containing the fetch offset, up to the high
//   watermark; read_committed reads stop at the last stable offset and
//   carry the aborted transactions overlapping what they return.
// * Response max_bytes and per-partition max_bytes are honoured, except that
//   the first batch of the response is always whole (KIP-74).
// * Long-polls up to max_wait_ms until min_bytes are available, woken by
//   appends to any fetched partition.
// * Fetch sessions (KIP-227), full and incremental; see fetch_sessions.go.
//   A session opened below v13 and continued at v13+, or the reverse,
//   answers FETCH_SESSION_TOPIC_ID_ERROR.
// * Record bytes go from the segment file to the socket with sendfile.
// * Follower fetching (KIP-392): consumers at v11+ (and the debugging
//   replica ID -2 at any version) may read from a follower, up to its high
//   watermark. With replica.selector.class set, the leader answers a
//   consumer that sent its rack with an empty partition naming the
//   preferred read replica; see replica_selector.go.
// * Errors come from one mapping (errors.go). From v16 a partition answering
//   NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names the current leader
//   and its epoch, and the response lists that leader's endpoint (KIP-951;
//   leader_hints.go).
//
// Version notes:
// * v4: isolation level, last stable offset, aborted transactions;
//   v5: log start offset; v7: sessions; v9: current leader epoch;
//   v11: rack ID, preferred read replica; v12: flexible, last fetched epoch,
//   diverging epoch; v13: topic IDs; v15: replica state; v16: node endpoints.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/replica"
	"github.com/kbroker/kbroker/etcd"
	"github.com/kbroker/kbroker/storage"
)

// fetchPart is the outcome of reading one partition for a response.
type fetchPart struct {
	sp               *sessionPartition
	errCode          int16
	highWatermark    int64
	lastStableOffset int64
	logStartOffset   int64
	data             storage.ReadResult
	// readCommitted partitions carry the aborted transactions overlapping
	// the returned range (possibly none); others carry null.
	readCommitted bool
	aborted       []storage.AbortedTxn
	// diverging tells a follower where to truncate (KIP-320, v12+).
	diverging *replica.EpochEndOffset
	// preferredReadReplica sends a consumer to another replica (KIP-392,
	// v11+); -1 for none.
	preferredReadReplica int32
	// currentLeader names the leader after NOT_LEADER_OR_FOLLOWER or
	// FENCED_LEADER_EPOCH (KIP-951, v16+).
	currentLeader *leaderHint
}

func newFetchPart(sp *sessionPartition) fetchPart {
	return fetchPart{sp: sp, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, preferredReadReplica: -1}
}

// consumerFetch is how a consumer's (non-replica) fetch reads partitions.
type consumerFetch struct {
	maxBytes      int
	readCommitted bool
	// fromFollower: this request may read from a follower replica.
	fromFollower bool
	// clientRack is set when the leader should pick a preferred read
	// replica for the client (v11+ with a replica selector configured).
	clientRack string
}

func handleFetch(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.FetchRequest)
	img := c.b.view.Image()

	// Translate the request's partitions into session partitions.
	var reqParts []*sessionPartition
	for _, rt := range r.Topics {
		name, id := resolveFetchTopic(img, r.Version, rt.Topic, rt.TopicID)
		for _, rp := range rt.Partitions {
			reqParts = append(reqParts, &sessionPartition{
				topic: name, topicID: id, partition: rp.Partition,
				fetchOffset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes, currentLeaderEpoch: rp.CurrentLeaderEpoch,
				lastFetchedEpoch: rp.LastFetchedEpoch, replicaLogStartOffset: rp.LogStartOffset,
				lastHighWatermark: -1, lastLogStartOffset: -1,
			})
		}
	}

	replicaID := r.ReplicaID
	if r.Version >= 15 {
		replicaID = r.ReplicaState.ID
	}

	var (
		session *fetchSession
		parts   = reqParts
		full    = true
	)
	if r.Version >= 7 && replicaID < 0 {
		switch {
		case r.SessionEpoch == sessionEpochFinal:
			if r.SessionID != 0 {
				c.b.sessions.remove(r.SessionID)
			}
		case r.SessionEpoch == sessionEpochInitial:
			if r.SessionID != 0 {
				c.b.sessions.remove(r.SessionID)
			}
			if session = c.b.sessions.create(r.Version); session != nil {
				for _, sp := range reqParts {
					session.upsert(sp)
				}
				parts = session.parts
			}
		default:
			fs, kerrErr := c.b.sessions.get(r.SessionID, r.SessionEpoch, r.Version)
			if kerrErr != nil {
				resp := r.ResponseKind().(*kmsg.FetchResponse)
				resp.ErrorCode = kerrErr.Code
				return now(resp), nil
			}
			session, full = fs, false
			for _, sp := range reqParts {
				session.upsert(sp)
			}
			for _, ft := range r.ForgottenTopics {
				name, id := resolveFetchTopic(img, r.Version, ft.Topic, ft.TopicID)
				for _, p := range ft.Partitions {
					session.forget(topicPartitionKey{topic: name, topicID: id, partition: p})
				}
			}
			parts = session.parts
		}
	}

	maxBytes := int(r.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	minBytes := int(r.MinBytes)
	cf := consumerFetch{
		maxBytes:      maxBytes,
		readCommitted: r.IsolationLevel == 1,
		// Kafka: a consumer without client metadata (v<11) reads from
		// leaders only; the debugging ID -2 reads from any replica.
		fromFollower: replicaID == debuggingReplicaID || (replicaID < 0 && r.Version >= 11),
	}
	if r.Version >= 11 && replicaID < 0 && c.b.cfg.ReplicaSelectorClass != "" {
		cf.clientRack = r.Rack
	}

	read := func() ([]fetchPart, int, bool) {
		if replicaID >= 0 {
			return c.readReplicaFetch(replicaID, parts, maxBytes)
		}
		return c.readFetch(parts, cf)
	}
	results, total, respondNow := read()
	if total >= minBytes || r.MaxWaitMillis <= 0 || respondNow || len(parts) == 0 {
		return c.fetchReply(r, session, full, results), nil
	}
	// Not enough yet: release, wait for an append to any partition (or the
	// deadline), then read again.
	releaseAll(results)
	wake := make(chan struct{}, 1)
	deadline := time.Duration(r.MaxWaitMillis) * time.Millisecond
	waitParts := c.waitablePartitions(parts, replicaID < 0 && cf.fromFollower)
	return wireReply(func() *wireResponse {
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			for _, p := range waitParts {
				p.Notify(wake)
			}
			results, total, respondNow := read()
			if total >= minBytes || respondNow {
				return c.buildFetch(r, session, full, results)
			}
			select {
			case <-wake:
				releaseAll(results)
				continue
			case <-timer.C:
			case <-c.closing():
			case <-c.b.ctx.Done():
			}
			return c.buildFetch(r, session, full, results)
		}
	}), nil
}

// resolveFetchTopic completes a fetched topic's name and ID from the image:
// v13+ requests name topics by ID (an unknown ID leaves the name empty),
// older ones by name.
func resolveFetchTopic(img *etcd.Image, version int16, name string, id [16]byte) (string, [16]byte) {
	if version >= 13 {
		if t := img.TopicsByID[id]; t != nil {
			return t.Name, id
		}
		return "", id
	}
	if t := img.Topics[name]; t != nil {
		return name, t.ID
	}
	return name, id
}

func releaseAll(results []fetchPart) {
	for i := range results {
		results[i].data.Release()
	}
}

// debuggingReplicaID is Kafka's FetchRequest.DEBUGGING_CONSUMER_ID: a
// consumer that may read from any replica at any version.
const debuggingReplicaID = -2

// readFetch reads every partition for a consumer, honouring the response
// and partition byte limits. It reports the record bytes gathered and
// whether the answer should go at once, without waiting for min_bytes: a
// partition answered with an error or named a preferred read replica.
func (c *conn) readFetch(parts []*sessionPartition, cf consumerFetch) ([]fetchPart, int, bool) {
	results := make([]fetchPart, 0, len(parts))
	total, maxBytes, readCommitted := 0, cf.maxBytes, cf.readCommitted
	respondNow := false
	now := time.Now()
	for _, sp := range parts {
		fp := newFetchPart(sp)
		p, err := c.b.partitions.readableFor(sp.topic, sp.partition, cf.fromFollower)
		switch {
		case err != nil:
			fp.errCode = c.b.partitionErrorCode(err, "fetch", sp.topic, sp.partition)
		default:
			fp.highWatermark, fp.lastStableOffset = p.FetchBounds()
			fp.logStartOffset = p.LogStartOffset()
			if e := sp.currentLeaderEpoch; e >= 0 {
				if cur := p.LeaderEpoch(); e < cur {
					fp.errCode = kerr.FencedLeaderEpoch.Code
				} else if e > cur {
					fp.errCode = kerr.UnknownLeaderEpoch.Code
				}
			}
			if fp.errCode != 0 {
				break
			}
			if cf.clientRack != "" {
				if fp.preferredReadReplica = c.preferredReadReplica(p, sp.fetchOffset, cf.clientRack, now); fp.preferredReadReplica >= 0 {
					break // no records: the client moves to that replica
				}
			}
			limit := int(sp.maxBytes)
			if remaining := maxBytes - total; remaining < limit {
				limit = remaining
			}
			if limit <= 0 && total > 0 {
				break
			}
			// KIP-74: until the response holds some data, the first batch is
			// returned whole whatever the limits.
			if total == 0 && limit <= 0 {
				limit = 1
			}
			// One pair of bounds for the data, the aborted transactions and
			// the answer (see FetchBounds).
			end := fp.highWatermark
			if readCommitted {
				end = fp.lastStableOffset
			}
			res, err := p.Read(sp.fetchOffset, limit, end)
			if err == nil && readCommitted {
				fp.readCommitted = true
				if res.Size > 0 {
					// Every abort that overlaps what may be returned; the
					// client skips aborted records by producer and offset.
					fp.aborted, err = p.AbortedTransactions(sp.fetchOffset, end)
					if err != nil {
						res.Release()
					}
				}
			}
			if err != nil {
				fp.errCode = c.b.partitionErrorCode(err, "fetch read", sp.topic, sp.partition)
				break
			}
			fp.data = res
			total += res.Size
		}
		if fp.errCode != 0 || fp.preferredReadReplica >= 0 {
			respondNow = true
		}
		results = append(results, fp)
	}
	return results, total, respondNow
}

// preferredReadReplica is the replica other than this leader that a
// consumer in clientRack at offset should read from, or -1.
func (c *conn) preferredReadReplica(p *replica.Partition, offset int64, clientRack string, now time.Time) int32 {
	candidates, ok := p.ReadReplicaCandidates(offset, now)
	if !ok {
		return -1
	}
	brokers := c.b.view.Image().Brokers
	return rackAwareReadReplica(candidates, clientRack, func(id int32) (string, bool) {
		info, ok := brokers[id]
		return info.Rack, ok
	})
}

// readReplicaFetch serves a follower broker: whole batches up to the log
// end offset, its position recorded by the leader (which may move the high
// watermark and grow the ISR), or the epoch to truncate to. A replica ID
// that is not a registered broker is refused partition by partition.
func (c *conn) readReplicaFetch(replicaID int32, parts []*sessionPartition, maxBytes int) ([]fetchPart, int, bool) {
	results := make([]fetchPart, 0, len(parts))
	total, anyErr := 0, false
	_, isBroker := c.b.view.Image().Brokers[replicaID]
	now := time.Now()
	for _, sp := range parts {
		fp := newFetchPart(sp)
		p, err := c.b.partitions.leaderFor(sp.topic, sp.partition)
		switch {
		case !isBroker:
			fp.errCode = kerr.ReplicaNotAvailable.Code
		case err != nil:
			fp.errCode = c.b.partitionErrorCode(err, "replica fetch", sp.topic, sp.partition)
		default:
			limit := min(int(sp.maxBytes), maxBytes-total)
			if limit <= 0 {
				limit = 1 // KIP-74: the first batch always goes
				if total > 0 {
					limit = 0
				}
			}
			res, err := p.ReadForFollower(replica.FollowerFetch{
				ReplicaID: replicaID, FetchOffset: sp.fetchOffset, LogStartOffset: sp.replicaLogStartOffset, LastFetchedEpoch: sp.lastFetchedEpoch,
				CurrentLeaderEpoch: sp.currentLeaderEpoch, MaxBytes: limit,
			}, now)
			fp.highWatermark, fp.logStartOffset, fp.diverging = res.HighWatermark, res.LogStartOffset, res.Diverging
			fp.lastStableOffset = p.LastStableOffset()
			if res.ISRChange != nil {
				c.b.isr.propose(p, *res.ISRChange)
			}
			if err != nil {
				fp.errCode = c.b.partitionErrorCode(err, "replica fetch read", sp.topic, sp.partition)
			} else {
				fp.data = res.Data
				total += res.Data.Size
			}
		}
		if fp.errCode != 0 || fp.diverging != nil {
			anyErr = true
		}
		results = append(results, fp)
	}
	return results, total, anyErr
}

// waitablePartitions resolves the hosted partitions a long poll waits on:
// those this broker leads, and its followers too for a consumer that may
// read from them.
func (c *conn) waitablePartitions(parts []*sessionPartition, followersToo bool) []interface{ Notify(chan<- struct{}) } {
	var out []interface{ Notify(chan<- struct{}) }
	for _, sp := range parts {
		if p, err := c.b.partitions.readableFor(sp.topic, sp.partition, followersToo); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (c *conn) fetchReply(r *kmsg.FetchRequest, session *fetchSession, full bool, results []fetchPart) reply {
	wr := c.buildFetch(r, session, full, results)
	return wireReply(func() *wireResponse { return wr })
}

// buildFetch turns read results into the response. For an incremental
// session fetch only partitions with news are included; what each client was
// told is remembered in the session.
func (c *conn) buildFetch(r *kmsg.FetchRequest, session *fetchSession, full bool, results []fetchPart) *wireResponse {
	resp := fetchResponseHeader{version: r.Version}
	if session != nil {
		resp.sessionID = session.id
	}
	var hints *leaderHints // made for the first partition that needs one
	var lastTopic *fetchTopicOut
	for i := range results {
		fp := &results[i]
		sp := fp.sp
		if fp.errCode != 0 {
			// As Kafka's ReplicaManager answers a failed partition read:
			// no offsets, so the client asks ListOffsets for what it needs.
			fp.highWatermark, fp.lastStableOffset, fp.logStartOffset = -1, -1, -1
		}
		if !full {
			// As Kafka's CachedPartition: records, an error, a moved high
			// watermark or log start, or a preferred read replica (the
			// client must hear of it, or it polls an empty leader forever).
			changed := fp.data.Size > 0 || fp.errCode != 0 || fp.preferredReadReplica >= 0 || fp.diverging != nil ||
				fp.highWatermark != sp.lastHighWatermark || fp.logStartOffset != sp.lastLogStartOffset
			if !changed {
				continue
			}
		}
		sp.lastHighWatermark, sp.lastLogStartOffset = fp.highWatermark, fp.logStartOffset
		if lastTopic == nil || lastTopic.name != sp.topic || lastTopic.id != sp.topicID {
			resp.topics = append(resp.topics, fetchTopicOut{name: sp.topic, id: sp.topicID})
			lastTopic = &resp.topics[len(resp.topics)-1]
		}
		lastTopic.parts = append(lastTopic.parts, fp)
		c.b.metrics.bytesOut.Add(float64(fp.data.Size))
		if r.Version >= 16 && fp.errCode != 0 {
			if hints == nil {
				hints = newLeaderHints(c)
			}
			if h, ok := hints.forPartition(sp.topic, sp.partition, fp.errCode); ok {
				fp.currentLeader = &h
			}
		}
	}
	if hints != nil {
		resp.nodeEndpoints = hints.nodes
	}
	return encodeFetchResponse(resp, results)
}

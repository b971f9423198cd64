package broker

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Fetch sessions (KIP-227): a client that fetches the same partitions again
// and again may register them once and then send only what changed. The
// broker answers incremental fetches with only the partitions that have news
// (records, a moved high watermark or log start offset, or an error).
//
// Session epochs: 0 opens a session (full fetch), -1 closes one (full,
// sessionless fetch), otherwise the epoch must be the session's next one.
//
// A session names its topics by ID when it was opened at v13+ and by name
// below; as Kafka's FetchManager.newContext, an incremental fetch on the
// other side of that boundary (with the right epoch) answers
// FETCH_SESSION_TOPIC_ID_ERROR, and the session stays as it was.
const (
	sessionEpochInitial = 0
	sessionEpochFinal   = -1
)

// sessionPartition is one partition remembered by a session, with what the
// client was last told so incremental responses can omit unchanged ones.
type sessionPartition struct {
	topic     string
	topicID   [16]byte
	partition int32

	fetchOffset        int64
	maxBytes           int32
	currentLeaderEpoch int32
	lastFetchedEpoch   int32 // followers (v12+)
	// replicaLogStartOffset is a follower's own log start offset (v5+).
	replicaLogStartOffset int64

	lastHighWatermark  int64
	lastLogStartOffset int64
}

// fetchSession is one client's registered partition list, in order. It is
// used by one connection at a time: clients keep one fetch in flight per
// broker, and a request with the wrong epoch is refused.
type fetchSession struct {
	id       int32
	epoch    int32 // the epoch the next request must carry
	topicIDs bool  // opened at Fetch v13+: topics are named by ID
	parts    []*sessionPartition
	index    map[topicPartitionKey]*sessionPartition
	lastUsed time.Time
}

// topicPartitionKey identifies a partition by topic ID when the client uses
// IDs (Fetch v13+), by name otherwise.
type topicPartitionKey struct {
	topic     string
	topicID   [16]byte
	partition int32
}

func (s *sessionPartition) key() topicPartitionKey {
	return topicPartitionKey{topic: s.topic, topicID: s.topicID, partition: s.partition}
}

func (fs *fetchSession) upsert(sp *sessionPartition) {
	k := sp.key()
	if cur := fs.index[k]; cur != nil {
		cur.fetchOffset, cur.maxBytes, cur.currentLeaderEpoch = sp.fetchOffset, sp.maxBytes, sp.currentLeaderEpoch
		return
	}
	fs.index[k] = sp
	fs.parts = append(fs.parts, sp)
}

func (fs *fetchSession) forget(k topicPartitionKey) {
	if fs.index[k] == nil {
		return
	}
	delete(fs.index, k)
	for i, p := range fs.parts {
		if p.key() == k {
			fs.parts = append(fs.parts[:i], fs.parts[i+1:]...)
			return
		}
	}
}

// fetchSessions is the broker's session cache, bounded like Kafka's
// max.incremental.fetch.session.cache.slots (default 1000); when full, the
// least recently used session idle for over a minute is evicted, else the
// new client is served sessionless.
type fetchSessions struct {
	max int
	mu  struct {
		sync.Mutex
		byID map[int32]*fetchSession
	}
}

func newFetchSessions(max int) *fetchSessions {
	s := &fetchSessions{max: max}
	s.mu.byID = map[int32]*fetchSession{}
	return s
}

// create registers a new session opened by a fetch of the given version, or
// returns nil when the cache is full.
func (s *fetchSessions) create(version int16) *fetchSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.byID) >= s.max {
		var oldest *fetchSession
		for _, fs := range s.mu.byID {
			if oldest == nil || fs.lastUsed.Before(oldest.lastUsed) {
				oldest = fs
			}
		}
		if oldest == nil || time.Since(oldest.lastUsed) < time.Minute {
			return nil
		}
		delete(s.mu.byID, oldest.id)
	}
	var id int32
	for id == 0 || s.mu.byID[id] != nil {
		id = rand.Int32()
	}
	fs := &fetchSession{id: id, epoch: 1, topicIDs: version >= 13, index: map[topicPartitionKey]*sessionPartition{}, lastUsed: time.Now()}
	s.mu.byID[id] = fs
	return fs
}

// get returns the session for an incremental fetch of the given version and
// advances its epoch, or the error Kafka answers with.
func (s *fetchSessions) get(id, epoch int32, version int16) (*fetchSession, *kerr.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.mu.byID[id]
	if fs == nil {
		return nil, kerr.FetchSessionIDNotFound
	}
	if fs.epoch != epoch {
		return nil, kerr.InvalidFetchSessionEpoch
	}
	if fs.topicIDs != (version >= 13) {
		return nil, kerr.FetchSessionTopicIDError
	}
	fs.epoch++
	if fs.epoch < 0 {
		fs.epoch = 1
	}
	fs.lastUsed = time.Now()
	return fs, nil
}

func (s *fetchSessions) remove(id int32) {
	s.mu.Lock()
	delete(s.mu.byID, id)
	s.mu.Unlock()
}

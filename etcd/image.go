package etcd

import (
	"log/slog"
	"maps"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Image is an immutable snapshot of the cluster metadata at one etcd
// revision. Nothing in it may be modified: maps, slices and *Topic values are
// shared between successive images (copy-on-write).
type Image struct {
	// Revision is the etcd revision the image reflects: every change up to
	// and including it has been applied.
	Revision  int64
	ClusterID string
	// ControllerID is the elected controller's broker id, -1 if none.
	ControllerID int32
	// ControllerEpoch is the elected controller's epoch, 0 if none.
	ControllerEpoch int64
	Brokers         map[int32]BrokerInfo // live (registered) brokers
	Topics          map[string]*Topic
	TopicsByID      map[[16]byte]*Topic
}

// Topic is a topic in an Image.
type Topic struct {
	Name       string
	ID         [16]byte
	Configs    map[string]string // topic-level config overrides
	Partitions []Partition       // index = partition id
	// ModRevision of topics/<name>; changes when partitions are added.
	ModRevision int64
}

// Partition is a partition in an Image.
type Partition struct {
	ID       int32
	Replicas []int32
	// State is the partition state; Leader and LeaderEpoch are -1 if its key
	// is missing (which a complete CreateTopic never leaves).
	State PartitionState
	// ModRevision of partitions/<topic>/<p>: the expectModRev for
	// CompareAndSetPartition and UpdatePartition.
	ModRevision int64
}

type topicRecord struct {
	spec   TopicSpec
	modRev int64
}

type partRecord struct {
	state  PartitionState
	modRev int64
}

type candidate struct {
	createRev int64
	brokerID  int32
}

// imageBuilder folds etcd key-value events into Images. It keeps the raw
// records (including partition keys whose topic key is absent, which readers
// must not see yet) and remembers what changed since the last build, so a
// build copies only the maps that changed. Owned by the MetadataView's watch
// goroutine.
type imageBuilder struct {
	prefix    string
	clusterID string
	log       *slog.Logger

	brokers    map[int32]BrokerInfo
	topics     map[string]topicRecord
	parts      map[string]map[int32]partRecord
	candidates map[string]candidate

	dirtyBrokers    bool
	dirtyController bool
	dirtyTopics     map[string]struct{}
}

func newImageBuilder(prefix, clusterID string, log *slog.Logger) *imageBuilder {
	return &imageBuilder{
		prefix:      prefix,
		clusterID:   clusterID,
		log:         log,
		brokers:     map[int32]BrokerInfo{},
		topics:      map[string]topicRecord{},
		parts:       map[string]map[int32]partRecord{},
		candidates:  map[string]candidate{},
		dirtyTopics: map[string]struct{}{},
	}
}

// apply folds one event into the records.
func (b *imageBuilder) apply(ev *mvccpb.Event) {
	if ev.Type == mvccpb.DELETE {
		b.del(string(ev.Kv.Key))
		return
	}
	b.put(ev.Kv)
}

// put records a created or updated key. A value that does not decode is
// logged and treated as absent, never trusted half-way.
func (b *imageBuilder) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rel, ok := strings.CutPrefix(key, b.prefix)
	if !ok {
		return
	}
	bad := func(err error) {
		b.log.Warn("ignoring undecodable metadata key", "key", key, "err", err)
		b.del(key)
	}
	switch {
	case strings.HasPrefix(rel, brokersDir):
		id, err := parseInt32(rel[len(brokersDir):])
		if err != nil {
			return
		}
		info, err := decodeBroker(kv.Value)
		if err != nil {
			bad(err)
			return
		}
		info.ID, info.Epoch = id, kv.CreateRevision
		b.brokers[id] = info
		b.dirtyBrokers = true
	case strings.HasPrefix(rel, topicsDir):
		name := rel[len(topicsDir):]
		if checkTopicName(name) != nil {
			return
		}
		spec, err := decodeTopic(name, kv.Value)
		if err != nil {
			bad(err)
			return
		}
		b.topics[name] = topicRecord{spec: spec, modRev: kv.ModRevision}
		b.dirtyTopics[name] = struct{}{}
	case strings.HasPrefix(rel, partitionsDir):
		topic, p, ok := splitPartitionKey(rel[len(partitionsDir):])
		if !ok {
			return
		}
		st, err := decodePartition(kv.Value)
		if err != nil {
			bad(err)
			return
		}
		m := b.parts[topic]
		if m == nil {
			m = map[int32]partRecord{}
			b.parts[topic] = m
		}
		m[p] = partRecord{state: st, modRev: kv.ModRevision}
		b.dirtyTopics[topic] = struct{}{}
	case strings.HasPrefix(rel, controllerDir+"/"):
		id, err := parseInt32(string(kv.Value))
		if err != nil {
			bad(err)
			return
		}
		b.candidates[key] = candidate{createRev: kv.CreateRevision, brokerID: id}
		b.dirtyController = true
	}
}

// del records a deleted key.
func (b *imageBuilder) del(key string) {
	rel, ok := strings.CutPrefix(key, b.prefix)
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(rel, brokersDir):
		if id, err := parseInt32(rel[len(brokersDir):]); err == nil {
			delete(b.brokers, id)
			b.dirtyBrokers = true
		}
	case strings.HasPrefix(rel, topicsDir):
		name := rel[len(topicsDir):]
		delete(b.topics, name)
		b.dirtyTopics[name] = struct{}{}
	case strings.HasPrefix(rel, partitionsDir):
		if topic, p, ok := splitPartitionKey(rel[len(partitionsDir):]); ok {
			if m := b.parts[topic]; m != nil {
				delete(m, p)
				if len(m) == 0 {
					delete(b.parts, topic)
				}
			}
			b.dirtyTopics[topic] = struct{}{}
		}
	case strings.HasPrefix(rel, controllerDir+"/"):
		delete(b.candidates, key)
		b.dirtyController = true
	}
}

// splitPartitionKey splits "<topic>/<p>".
func splitPartitionKey(s string) (string, int32, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return "", 0, false
	}
	p, err := parseInt32(s[i+1:])
	if err != nil || checkTopicName(s[:i]) != nil {
		return "", 0, false
	}
	return s[:i], p, true
}

// build returns the image at rev: prev with the changes since the last build
// applied (everything, if prev is nil).
func (b *imageBuilder) build(prev *Image, rev int64) *Image {
	img := &Image{Revision: rev, ClusterID: b.clusterID, ControllerID: -1}
	if prev != nil {
		img.ControllerID, img.ControllerEpoch = prev.ControllerID, prev.ControllerEpoch
		img.Brokers, img.Topics, img.TopicsByID = prev.Brokers, prev.Topics, prev.TopicsByID
	} else {
		b.dirtyBrokers, b.dirtyController = true, true
		img.Topics, img.TopicsByID = map[string]*Topic{}, map[[16]byte]*Topic{}
		for name := range b.topics {
			b.dirtyTopics[name] = struct{}{}
		}
	}
	if b.dirtyBrokers {
		img.Brokers = maps.Clone(b.brokers)
	}
	if b.dirtyController {
		// The leader is the candidate that campaigned first (lowest
		// CreateRevision): the others wait for its key to go.
		img.ControllerID, img.ControllerEpoch = -1, 0
		for _, c := range b.candidates {
			if img.ControllerEpoch == 0 || c.createRev < img.ControllerEpoch {
				img.ControllerID, img.ControllerEpoch = c.brokerID, c.createRev
			}
		}
	}
	if len(b.dirtyTopics) > 0 {
		img.Topics, img.TopicsByID = maps.Clone(img.Topics), maps.Clone(img.TopicsByID)
		for name := range b.dirtyTopics {
			if old := img.Topics[name]; old != nil {
				if img.TopicsByID[old.ID] == old {
					delete(img.TopicsByID, old.ID)
				}
				delete(img.Topics, name)
			}
			if rec, ok := b.topics[name]; ok {
				t := b.buildTopic(rec)
				img.Topics[name] = t
				img.TopicsByID[t.ID] = t
			}
		}
	}
	b.dirtyBrokers, b.dirtyController = false, false
	clear(b.dirtyTopics)
	return img
}

func (b *imageBuilder) buildTopic(rec topicRecord) *Topic {
	spec := rec.spec
	t := &Topic{
		Name:        spec.Name,
		ID:          spec.ID,
		Configs:     spec.Configs,
		Partitions:  make([]Partition, len(spec.Replicas)),
		ModRevision: rec.modRev,
	}
	states := b.parts[spec.Name]
	for i, replicas := range spec.Replicas {
		p := Partition{ID: int32(i), Replicas: replicas, State: PartitionState{Leader: -1, LeaderEpoch: -1}}
		if pr, ok := states[int32(i)]; ok {
			p.State, p.ModRevision = pr.state, pr.modRev
		}
		t.Partitions[i] = p
	}
	return t
}

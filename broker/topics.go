package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// maxTopicNameLength is Kafka's limit (249, leaving room for suffixes in
// file names).
const maxTopicNameLength = 249

// validateTopicName applies Kafka's topic name rules.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > maxTopicNameLength:
		return fmt.Errorf("topic name is %d characters, more than %d", len(name), maxTopicNameLength)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q contains %q: only ASCII letters, digits, '.', '_' and '-' are allowed", name, r)
		}
	}
	return nil
}

// newTopicID returns a random topic ID that is neither zero nor Kafka's
// reserved metadata ID, and whose string form does not start with '-'
// (Kafka avoids those so IDs are safe on command lines).
func newTopicID() [16]byte {
	for {
		var id [16]byte
		rand.Read(id[:])
		if id == ([16]byte{}) || id == ([16]byte{15: 1}) {
			continue
		}
		if strings.HasPrefix(base64.RawURLEncoding.EncodeToString(id[:]), "-") {
			continue
		}
		return id
	}
}

// topicRequest is a validated request to create one topic.
type topicRequest struct {
	name       string
	partitions int32
	rf         int16
	assignment [][]int32 // explicit replica lists per partition, or nil
	// assignmentErr is set when the explicit assignment does not list
	// partitions 0..n-1 once each; planTopic answers it where Kafka's
	// controller does, after the name, config and count checks.
	assignmentErr *topicError
	configs       map[string]string
	nullConfigs   []string // config names given with a null value
}

// unifyCollisionChars maps '.' to '_': two topic names that are equal after
// it collide, since both become the same metric name (Kafka's
// Topic.unifyCollisionChars).
func unifyCollisionChars(name string) string { return strings.ReplaceAll(name, ".", "_") }

// collidingTopic returns an existing topic other than name that collides
// with it on '.' versus '_', or "" when there is none.
func collidingTopic(img *etcd.Image, name string) string {
	if !strings.ContainsAny(name, "._") {
		return ""
	}
	unified := unifyCollisionChars(name)
	var found string
	for existing := range img.Topics {
		if existing != name && unifyCollisionChars(existing) == unified && (found == "" || existing < found) {
			found = existing
		}
	}
	return found
}

// checkReplicaAssignment applies Kafka's checks on one partition's explicit
// replica list (ReplicationControlManager's validateManualPartitionAssignment
// and the fenced check after it), for CreateTopics and CreatePartitions
// alike: not empty, only registered brokers, none twice, rf replicas, and
// at least one replica not in controlled shutdown (it leads; the others
// join the ISR when they are back).
func checkReplicaAssignment(img *etcd.Image, partition int, replicas []int32, rf int) *topicError {
	if len(replicas) == 0 {
		return topicErr(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	sorted := slices.Sorted(slices.Values(replicas))
	for i, id := range sorted {
		if _, ok := img.Brokers[id]; !ok {
			return topicErr(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
		if i > 0 && sorted[i-1] == id {
			return topicErr(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", id)
		}
	}
	if len(replicas) != rf {
		return topicErr(kerr.InvalidReplicaAssignment, "The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(replicas), rf)
	}
	for _, id := range replicas {
		if !img.Brokers[id].ShuttingDown {
			return nil
		}
	}
	return topicErr(kerr.InvalidReplicaAssignment, "All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown.", partition)
}

// topicError is a kerr code with Kafka's message for the response.
type topicError struct {
	err *kerr.Error
	msg string
}

func (e *topicError) Error() string { return e.msg }

// Unwrap makes the wire code visible to errors.Is.
func (e *topicError) Unwrap() error { return e.err }

func topicErr(err *kerr.Error, format string, args ...any) *topicError {
	return &topicError{err: err, msg: fmt.Sprintf(format, args...)}
}

// planTopic validates a creation request against the image and the broker
// defaults and works out replica assignments and initial partition states.
func (b *Broker) planTopic(img *etcd.Image, tr topicRequest) (etcd.TopicSpec, []etcd.PartitionState, *topicError) {
	var spec etcd.TopicSpec
	if err := validateTopicName(tr.name); err != nil {
		return spec, nil, topicErr(kerr.InvalidTopicException, "%v", err)
	}
	if img.Topics[tr.name] != nil {
		return spec, nil, topicErr(kerr.TopicAlreadyExists, "Topic '%s' already exists.", tr.name)
	}
	if other := collidingTopic(img, tr.name); other != "" {
		return spec, nil, topicErr(kerr.InvalidTopicException, "Topic '%s' collides with existing topic: %s", tr.name, other)
	}
	if len(tr.nullConfigs) > 0 {
		return spec, nil, topicErr(kerr.InvalidConfig, "Null value not supported for topic configs: %s", strings.Join(tr.nullConfigs, ","))
	}
	for k, v := range tr.configs {
		if err := config.ValidateTopicConfig(k, v); err != nil {
			return spec, nil, topicErr(kerr.InvalidConfig, "%v", err)
		}
	}
	brokers := liveBrokerIDs(img)
	var assignment [][]int32
	if len(tr.assignment) > 0 || tr.assignmentErr != nil {
		if tr.partitions != -1 || tr.rf != -1 {
			return spec, nil, topicErr(kerr.InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
		}
		if tr.assignmentErr != nil {
			return spec, nil, tr.assignmentErr
		}
		for p, replicas := range tr.assignment {
			if terr := checkReplicaAssignment(img, p, replicas, len(tr.assignment[0])); terr != nil {
				return spec, nil, terr
			}
		}
		assignment = tr.assignment
	} else {
		partitions, rf := tr.partitions, tr.rf
		if partitions == -1 {
			partitions = b.cfg.NumPartitions
		}
		if rf == -1 {
			rf = int16(b.cfg.DefaultReplicationFactor)
		}
		// Kafka's order and words (ReplicationControlManager.createTopic):
		// the replication factor is checked before the partition count.
		if rf <= 0 {
			return spec, nil, topicErr(kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
		}
		if partitions <= 0 {
			return spec, nil, topicErr(kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
		}
		if int(rf) > len(brokers) {
			return spec, nil, topicErr(kerr.InvalidReplicationFactor, "Replication factor: %d larger than available brokers: %d.", rf, len(brokers))
		}
		assignment = assignReplicasFor(img, brokers, int(partitions), int(rf), 0)
	}
	spec = etcd.TopicSpec{Name: tr.name, ID: newTopicID(), Replicas: assignment, Configs: tr.configs}
	return spec, initialStates(img, assignment), nil
}

// registeredBrokerIDs lists every registered broker, sorted (Metadata and
// DescribeCluster show brokers that are shutting down too).
func registeredBrokerIDs(img *etcd.Image) []int32 {
	ids := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// liveBrokerIDs lists the registered brokers that are not shutting down,
// the candidates for new replicas.
func liveBrokerIDs(img *etcd.Image) []int32 {
	ids := make([]int32, 0, len(img.Brokers))
	for id, info := range img.Brokers {
		if !info.ShuttingDown {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// assignReplicas spreads partitions over brokers the way Kafka's
// rack-unaware assignment does: a random starting broker, leaders placed
// round-robin, followers shifted so replicas of neighbouring partitions do
// not line up. firstPartition lets CreatePartitions continue the pattern.
func assignReplicas(brokers []int32, partitions, rf, firstPartition int) [][]int32 {
	n := len(brokers)
	start := randInt(n)
	shift := randInt(n)
	out := make([][]int32, partitions)
	for i := 0; i < partitions; i++ {
		p := firstPartition + i
		if p > 0 && p%n == 0 {
			shift++
		}
		first := (p + start) % n
		replicas := []int32{brokers[first]}
		for j := 0; j < rf-1; j++ {
			s := 1 + (shift+j)%(n-1)
			replicas = append(replicas, brokers[(first+s)%n])
		}
		out[i] = replicas
	}
	return out
}

func randInt(n int) int {
	if n <= 1 {
		return 0
	}
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

// initialStates makes the first live replica of each partition its leader at
// epoch 0, with the live replicas as ISR.
func initialStates(img *etcd.Image, assignment [][]int32) []etcd.PartitionState {
	states := make([]etcd.PartitionState, len(assignment))
	for i, replicas := range assignment {
		st := etcd.PartitionState{Leader: -1}
		for _, r := range replicas {
			if info, ok := img.Brokers[r]; ok && !info.ShuttingDown {
				if st.Leader == -1 {
					st.Leader = r
				}
				st.ISR = append(st.ISR, r)
			}
		}
		states[i] = st
	}
	return states
}

// createTopic writes a planned topic through the controller and waits until
// this broker's image shows it.
func (b *Broker) createTopic(ctx context.Context, spec etcd.TopicSpec, states []etcd.PartitionState) *topicError {
	ctl := b.awaitController(ctx)
	if ctl == nil {
		return topicErr(kerr.NotController, "This broker is not the controller.")
	}
	rev, err := ctl.CreateTopic(ctx, spec, states)
	switch {
	case errors.Is(err, etcd.ErrTopicExists):
		return topicErr(kerr.TopicAlreadyExists, "Topic '%s' already exists.", spec.Name)
	case errors.Is(err, etcd.ErrNotController):
		return topicErr(kerr.NotController, "This broker is no longer the controller.")
	case err != nil:
		b.logger.Error("create topic in etcd", "topic", spec.Name, "err", err)
		return topicErr(kerr.UnknownServerError, "could not store the topic: %v", err)
	}
	if err := b.view.WaitForRevision(ctx, rev); err != nil {
		return topicErr(kerr.RequestTimedOut, "topic created but not yet visible: %v", err)
	}
	b.logger.Info("created topic", "topic", spec.Name, "partitions", len(spec.Replicas), "replication_factor", len(spec.Replicas[0]))
	return nil
}

// isInternalTopic reports whether Kafka marks the topic internal in
// Metadata (Topic.isInternal): the group and transaction coordinators'.
func isInternalTopic(name string) bool {
	return name == offsetsTopic || name == transactionTopic
}

package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Endpoint is one listener a broker advertises.
type Endpoint struct {
	Listener         string `json:"listener"`          // listener name, e.g. "PLAINTEXT"
	Host             string `json:"host"`              // advertised host
	Port             int32  `json:"port"`              // advertised port
	SecurityProtocol string `json:"security_protocol"` // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
}

// BrokerInfo is the value of brokers/<id>.
type BrokerInfo struct {
	ID          int32      `json:"id"`
	Rack        string     `json:"rack,omitempty"` // "" means no rack
	Endpoints   []Endpoint `json:"endpoints"`
	Incarnation string     `json:"incarnation"` // opaque, new per process start; see the package doc
	// ShuttingDown is set by a broker that has begun a controlled shutdown
	// (Registration.SetShuttingDown): the controller moves its leaderships
	// away, takes it out of every ISR and elects it nowhere, as Kafka's
	// controller treats brokers in controlled shutdown. It is never cleared:
	// a restarted broker registers afresh.
	ShuttingDown bool `json:"shutting_down,omitempty"`
	// OfflineDirs are the log dirs this broker took offline after an I/O
	// error, with the partitions that were in them (Kafka's JBOD handling,
	// KIP-112; Registration.SetOfflineDirs). The controller treats those
	// replicas as offline: they lead nowhere and leave their ISRs. A
	// restarted broker registers afresh, without them.
	OfflineDirs []OfflineDir `json:"offline_dirs,omitempty"`
	// Epoch is the CreateRevision of the registration key, so it grows with
	// every (re-)registration: the analogue of Kafka's ZooKeeper-mode broker
	// epoch (the czxid of /brokers/ids/<id>). Not stored in the value.
	Epoch int64 `json:"-"`
}

// OfflineDir is a log dir a broker took offline, and the partitions whose
// replicas were in it.
type OfflineDir struct {
	Dir        string         `json:"dir"`
	Partitions []PartitionRef `json:"partitions"`
}

// PartitionRef names one partition.
type PartitionRef struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// ReplicaOffline reports whether this broker's replica of the partition is
// in a log dir it took offline.
func (bi BrokerInfo) ReplicaOffline(topic string, partition int32) bool {
	for _, d := range bi.OfflineDirs {
		for _, p := range d.Partitions {
			if p.Partition == partition && p.Topic == topic {
				return true
			}
		}
	}
	return false
}

// TopicSpec is what the controller writes to topics/<name>.
type TopicSpec struct {
	Name     string
	ID       [16]byte
	Replicas [][]int32 // replica assignment, index = partition id
	Configs  map[string]string
}

// PartitionState is the value of partitions/<topic>/<p>. The store writes
// it as given: callers own the epoch rules (bump LeaderEpoch on every leader
// change, PartitionEpoch on every change of the state).
type PartitionState struct {
	Leader         int32   `json:"leader"` // -1: no leader
	LeaderEpoch    int32   `json:"leader_epoch"`
	ISR            []int32 `json:"isr"`
	PartitionEpoch int32   `json:"partition_epoch"`
}

// topicValue is the JSON form of TopicSpec (the name lives in the key).
type topicValue struct {
	ID       string            `json:"id"`
	Replicas [][]int32         `json:"replicas"`
	Configs  map[string]string `json:"configs,omitempty"`
}

// counterValue is the JSON form of producer-ids/next and broker-ids/next.
type counterValue struct {
	Next int64 `json:"next"`
}

func encodeTopic(t TopicSpec) (string, error) {
	b, err := json.Marshal(topicValue{ID: FormatUUID(t.ID), Replicas: t.Replicas, Configs: t.Configs})
	if err != nil {
		return "", fmt.Errorf("encode topic %s: %w", t.Name, err)
	}
	return string(b), nil
}

func decodeTopic(name string, b []byte) (TopicSpec, error) {
	var v topicValue
	if err := json.Unmarshal(b, &v); err != nil {
		return TopicSpec{}, fmt.Errorf("decode topic %s: %w", name, err)
	}
	id, err := ParseUUID(v.ID)
	if err != nil {
		return TopicSpec{}, fmt.Errorf("decode topic %s: %w", name, err)
	}
	return TopicSpec{Name: name, ID: id, Replicas: v.Replicas, Configs: v.Configs}, nil
}

func encodeJSON(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

func decodePartition(b []byte) (PartitionState, error) {
	var st PartitionState
	if err := json.Unmarshal(b, &st); err != nil {
		return PartitionState{}, fmt.Errorf("decode partition state: %w", err)
	}
	return st, nil
}

func decodeBroker(b []byte) (BrokerInfo, error) {
	var bi BrokerInfo
	if err := json.Unmarshal(b, &bi); err != nil {
		return BrokerInfo{}, fmt.Errorf("decode broker: %w", err)
	}
	return bi, nil
}

// checkTopicName guards the key layout: a name with '/' would alias other
// keys. Kafka's full naming rules (legal characters, 249 bytes) belong to the
// request handlers, which must map them to INVALID_TOPIC_EXCEPTION.
func checkTopicName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("etcd: invalid topic name %q", name)
	}
	return nil
}

// checkAssignment validates a replica assignment: every partition has at
// least one replica, ids are non-negative and not repeated.
func checkAssignment(topic string, first int, assignment [][]int32) error {
	for i, replicas := range assignment {
		if len(replicas) == 0 {
			return fmt.Errorf("etcd: topic %s partition %d: no replicas", topic, first+i)
		}
		for j, r := range replicas {
			if r < 0 {
				return fmt.Errorf("etcd: topic %s partition %d: invalid replica %d", topic, first+i, r)
			}
			for _, o := range replicas[:j] {
				if o == r {
					return fmt.Errorf("etcd: topic %s partition %d: duplicate replica %d", topic, first+i, r)
				}
			}
		}
	}
	return nil
}

var errBadKey = errors.New("etcd: unexpected key")

// parseInt32 parses a decimal key segment (broker id, partition id).
func parseInt32(s string) (int32, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errBadKey // keep keys canonical: "07" is not partition 7
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, errBadKey
	}
	return int32(n), nil
}

package txn

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// Record key and value versions Kafka 4 writes (TransactionLog): key 0,
// value 1 (flexible, with tagged fields) once transaction.version >= 1.
const (
	keyVersion   = 0
	valueVersion = 1
)

// Transaction states, with Kafka's byte values (TransactionState.id).
// PrepareEpochFence and Dead are never written by this package: fencing
// writes PrepareAbort directly and expiry writes a tombstone.
const (
	stateEmpty          kmsg.TransactionState = 0
	stateOngoing        kmsg.TransactionState = 1
	statePrepareCommit  kmsg.TransactionState = 2
	statePrepareAbort   kmsg.TransactionState = 3
	stateCompleteCommit kmsg.TransactionState = 4
	stateCompleteAbort  kmsg.TransactionState = 5
	stateDead           kmsg.TransactionState = 6
)

const (
	noProducerID    int64 = -1
	noProducerEpoch int16 = -1
	maxEpoch        int16 = math.MaxInt16
)

// epochExhausted reports an epoch past which a producer may not go: Kafka
// keeps MaxInt16 for the coordinator so it can always fence.
func epochExhausted(e int16) bool { return e >= maxEpoch-1 }

type topicPartition struct {
	topic     string
	partition int32
}

// txnMeta is the durable state of one transactional ID: exactly what its
// latest TxnMetadataValue record says. It is replaced (never edited in
// place) by replay; handlers build a modified copy, write it and let replay
// install it.
type txnMeta struct {
	producerID     int64
	prevProducerID int64 // the producer ID before the latest transition
	nextProducerID int64 // TV2: the ID the producer moves to when its epoch overflows at completion
	epoch          int16
	timeoutMs      int32
	state          kmsg.TransactionState
	parts          map[topicPartition]struct{}
	startMs        int64 // -1 when no transaction started
	updateMs       int64
	clientTV       int16 // client transaction version of the latest transition (0 or 2)
}

func (m *txnMeta) clone() *txnMeta {
	c := *m
	c.parts = make(map[topicPartition]struct{}, len(m.parts))
	for tp := range m.parts {
		c.parts[tp] = struct{}{}
	}
	return &c
}

// open reports a transaction in progress (partitions may hold its data).
func (m *txnMeta) open() bool {
	return m.state == stateOngoing || m.state == statePrepareCommit || m.state == statePrepareAbort
}

func (m *txnMeta) preparing() bool {
	return m.state == statePrepareCommit || m.state == statePrepareAbort
}

// sortedParts returns the partitions grouped by topic, sorted.
func (m *txnMeta) sortedParts() []kmsg.TxnMetadataValueTopic {
	by := map[string][]int32{}
	for tp := range m.parts {
		by[tp.topic] = append(by[tp.topic], tp.partition)
	}
	topics := make([]kmsg.TxnMetadataValueTopic, 0, len(by))
	for t, ps := range by {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		topics = append(topics, kmsg.TxnMetadataValueTopic{Topic: t, Partitions: ps})
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].Topic < topics[j].Topic })
	return topics
}

func txnKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

// metaRecord encodes m as Kafka's TransactionLog.valueToBytes does: value
// version 1, partitions null in state Empty. Unlike Kafka 4.0, it also
// fills the tagged previous/next producer IDs (KIP-890 defines them and
// Kafka reads them), so an epoch overflow in flight survives a failover.
func metaRecord(id string, m *txnMeta) runtime.Record {
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = m.timeoutMs
	v.State = m.state
	if m.state != stateEmpty {
		v.Topics = m.sortedParts()
	}
	v.LastUpdateTimestamp = m.updateMs
	v.StartTimestamp = m.startMs
	v.PreviousProducerID = m.prevProducerID
	v.NextProducerID = m.nextProducerID
	v.ClientTransactionVersion = m.clientTV
	return runtime.Record{Key: txnKey(id), Value: v.AppendTo(nil)}
}

func tombstone(id string) runtime.Record { return runtime.Record{Key: txnKey(id)} }

// decodeMeta reads a TxnMetadataValue of any version kmsg knows.
func decodeMeta(value []byte) (*txnMeta, error) {
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return nil, err
	}
	m := &txnMeta{
		producerID:     v.ProducerID,
		prevProducerID: v.PreviousProducerID,
		nextProducerID: v.NextProducerID,
		epoch:          v.ProducerEpoch,
		timeoutMs:      v.TimeoutMillis,
		state:          v.State,
		parts:          map[topicPartition]struct{}{},
		startMs:        v.StartTimestamp,
		updateMs:       v.LastUpdateTimestamp,
		clientTV:       v.ClientTransactionVersion,
	}
	if m.state < stateEmpty || m.state > stateDead {
		return nil, fmt.Errorf("unknown transaction state %d", m.state)
	}
	if m.state != stateEmpty {
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				m.parts[topicPartition{t.Topic, p}] = struct{}{}
			}
		}
	}
	return m, nil
}

// replay applies one record to the shard's durable state. It is the only
// writer of s.txns, both at load and live. Transaction markers, which
// nothing writes to this topic, are ignored.
func (s *Shard) replay(e runtime.Entry) {
	if e.Marker {
		return
	}
	if len(e.Key) < 2 {
		s.logger.Debug("skipping __transaction_state record with a short key", "partition", s.partition)
		return
	}
	if v := int16(binary.BigEndian.Uint16(e.Key)); v != keyVersion {
		s.logger.Debug("skipping __transaction_state record of unknown key version", "partition", s.partition, "key_version", v)
		return
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(e.Key); err != nil {
		s.logger.Debug("skipping undecodable transaction key", "partition", s.partition, "err", err)
		return
	}
	if e.Value == nil {
		delete(s.txns, k.TransactionalID)
		return
	}
	m, err := decodeMeta(e.Value)
	if err != nil {
		s.logger.Warn("skipping undecodable transaction metadata", "partition", s.partition, "transactional_id", k.TransactionalID, "err", err)
		return
	}
	if m.state == stateDead {
		delete(s.txns, k.TransactionalID)
		return
	}
	s.txns[k.TransactionalID] = m
}

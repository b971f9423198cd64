package txn

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
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

// record is one key/value of __transaction_state; a nil value is a
// tombstone.
type record struct {
	key, value []byte
}

func txnKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

// metaRecord encodes m as Kafka's TransactionLog.valueToBytes does: value
// version 1, partitions null in state Empty. Unlike Kafka 4.0, it also
// fills the tagged previous/next producer IDs (KIP-890 defines them and
// Kafka reads them), so an epoch overflow in flight survives a failover.
func metaRecord(id string, m *txnMeta) record {
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
	return record{key: txnKey(id), value: v.AppendTo(nil)}
}

func tombstone(id string) record { return record{key: txnKey(id)} }

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

// buildBatch encodes records as one uncompressed magic-2 batch (producer ID
// -1) with base offset 0, which the log assigns, and a CRC-32C over
// attributes to the end.
func buildBatch(recs []record, ts int64) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
		probe := rec.AppendTo(nil) // with Length 0 the length prefix is one byte
		rec.Length = int32(len(probe) - 1)
		body = rec.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	return b
}

// decodedRecord is one record read back from the log.
type decodedRecord struct {
	offset     int64
	key, value []byte
}

// decodeBatches splits concatenated batches read from the log, skipping
// records below from (a read may start inside a batch) and control batches
// (none are expected in this topic). It returns the offset after the last
// complete batch; a trailing partial batch is left for the next read.
func decodeBatches(b []byte, from int64) ([]decodedRecord, int64, error) {
	var out []decodedRecord
	next := from
	for pos := 0; pos < len(b); {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: batch at byte %d: %w", ErrCorruptLog, pos, err)
		}
		size := h.TotalSize()
		if size > len(b)-pos {
			if pos == 0 {
				return nil, 0, fmt.Errorf("%w: batch at offset %d claims %d bytes, read returned %d", ErrCorruptLog, h.BaseOffset, size, len(b))
			}
			break
		}
		one := b[pos : pos+size]
		pos += size
		if h.NextOffset() > next {
			next = h.NextOffset()
		}
		if h.IsControl() {
			continue
		}
		err = batch.ForEachRecord(one, func(r batch.Record) bool {
			if r.Offset >= from {
				out = append(out, decodedRecord{offset: r.Offset, key: r.Key, value: r.Value})
			}
			return true
		})
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrCorruptLog, err)
		}
	}
	return out, next, nil
}

// replay applies one record to the shard's durable state. It is the only
// writer of s.txns, both at load and live.
func (s *Shard) replay(key, value []byte) {
	if len(key) < 2 {
		s.logger.Debug("skipping __transaction_state record with a short key", "partition", s.partition)
		return
	}
	if v := int16(binary.BigEndian.Uint16(key)); v != keyVersion {
		s.logger.Debug("skipping __transaction_state record of unknown key version", "partition", s.partition, "key_version", v)
		return
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		s.logger.Debug("skipping undecodable transaction key", "partition", s.partition, "err", err)
		return
	}
	if value == nil {
		delete(s.txns, k.TransactionalID)
		return
	}
	m, err := decodeMeta(value)
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

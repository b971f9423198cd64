package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kbroker/kbroker/protocol/batch"
)

// Producer-state errors an append can fail with. The broker maps them to
// the Kafka error codes named here; nothing is written when one is returned.
var (
	// ErrOutOfOrderSequence: an idempotent batch does not follow the
	// producer's last sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
	ErrOutOfOrderSequence = errors.New("storage: out of order sequence number")
	// ErrInvalidProducerEpoch: a batch or marker from an older producer epoch
	// than the partition knows (INVALID_PRODUCER_EPOCH).
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	// ErrInvalidTxnState: a non-transactional batch from a producer with an
	// open transaction (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("storage: invalid transaction state")
	// ErrCoordinatorFenced: a transaction marker from an older transaction
	// coordinator epoch than the last one seen (TRANSACTION_COORDINATOR_FENCED).
	ErrCoordinatorFenced = errors.New("storage: transaction coordinator fenced")
)

// batchesKept is how many recent batches per producer are remembered for
// duplicate detection: clients keep at most five requests in flight
// (Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN).
const batchesKept = 5

// noSequence marks a batch without sequence numbers (RecordBatch.NO_SEQUENCE):
// coordinator writes carry a producer ID and epoch but no sequence.
const noSequence = -1

// batchMeta is what duplicate detection needs of an appended batch
// (Kafka's BatchMetadata).
type batchMeta struct {
	lastSeq     int32
	lastOffset  int64
	offsetDelta int32 // last offset minus first offset
	timestamp   int64 // the batch's max timestamp (the append time for LogAppendTime)
}

func (b batchMeta) firstSeq() int32 {
	if b.lastSeq == noSequence {
		return noSequence
	}
	// Inverse of batch.IncrementSequence: sequences wrap at MaxInt32.
	if b.lastSeq < b.offsetDelta {
		return math.MaxInt32 - (b.offsetDelta - b.lastSeq) + 1
	}
	return b.lastSeq - b.offsetDelta
}

func (b batchMeta) firstOffset() int64 { return b.lastOffset - int64(b.offsetDelta) }

// producerEntry is one producer's state in one log (Kafka's
// ProducerStateEntry). It is a value (the batches live in an array), so a
// check can work on a copy without allocating.
type producerEntry struct {
	epoch            int16 // -1 until a batch or marker sets it
	n                int   // batches held, oldest first
	batches          [batchesKept]batchMeta
	coordinatorEpoch int32 // of the last marker, -1 none
	txnFirst         int64 // first offset of the open transaction, -1 none
	lastTimestamp    int64
}

func newProducerEntry() producerEntry {
	return producerEntry{epoch: -1, coordinatorEpoch: -1, txnFirst: -1, lastTimestamp: -1}
}

func (e *producerEntry) lastSeq() int32 {
	if e.n == 0 {
		return noSequence
	}
	return e.batches[e.n-1].lastSeq
}

// setEpoch moves the entry to epoch; the batches of another epoch say
// nothing about the new one's sequences.
func (e *producerEntry) setEpoch(epoch int16) {
	if e.epoch != epoch {
		e.epoch, e.n = epoch, 0
	}
}

func (e *producerEntry) addBatch(m batchMeta) {
	if e.n == batchesKept {
		copy(e.batches[:], e.batches[1:])
		e.n--
	}
	e.batches[e.n] = m
	e.n++
}

// duplicateOf finds a retained batch with the same epoch and sequence range
// as h (Kafka's findDuplicateBatch).
func (e *producerEntry) duplicateOf(h batch.Header) (batchMeta, bool) {
	if h.ProducerEpoch != e.epoch || h.BaseSequence == noSequence {
		return batchMeta{}, false
	}
	last := h.LastSequence()
	for _, b := range e.batches[:e.n] {
		if b.firstSeq() == h.BaseSequence && b.lastSeq == last {
			return b, true
		}
	}
	return batchMeta{}, false
}

// inSequence reports whether next directly follows last, wrapping at
// MaxInt32 as Kafka's sequence numbers do.
func inSequence(last, next int32) bool {
	return next == last+1 || (last == math.MaxInt32 && next == 0)
}

// checkData validates a data batch against e as Kafka's ProducerAppendInfo
// does for a client append: an older epoch is fenced; a new epoch must start
// at sequence 0 unless the producer is unknown here (KIP-360); within an
// epoch the batch must follow the last sequence; a producer with an open
// transaction may only send transactional batches. Batches without
// sequences (coordinator writes) skip the sequence checks.
func (e *producerEntry) checkData(h batch.Header) error {
	if h.ProducerEpoch < e.epoch {
		return fmt.Errorf("%w: producer %d epoch %d, current epoch %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if h.BaseSequence != noSequence {
		if h.ProducerEpoch != e.epoch {
			if h.BaseSequence != 0 && e.epoch != -1 {
				return fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d, expected 0",
					ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			}
		} else if e.epoch != -1 && !inSequence(e.lastSeq(), h.BaseSequence) {
			return fmt.Errorf("%w: producer %d epoch %d: sequence %d after %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence, e.lastSeq())
		}
	}
	if e.txnFirst >= 0 && !h.IsTransactional() {
		return fmt.Errorf("%w: producer %d sent a non-transactional batch inside the transaction begun at offset %d",
			ErrInvalidTxnState, h.ProducerID, e.txnFirst)
	}
	return nil
}

// checkMarker validates a transaction marker against e: the producer epoch
// may not go back, nor the coordinator epoch (a zombie coordinator).
func (e *producerEntry) checkMarker(h batch.Header, m marker) error {
	if h.ProducerEpoch < e.epoch {
		return fmt.Errorf("%w: marker for producer %d epoch %d, current epoch %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if m.coordinatorEpoch < e.coordinatorEpoch {
		return fmt.Errorf("%w: marker for producer %d from coordinator epoch %d, last seen %d",
			ErrCoordinatorFenced, h.ProducerID, m.coordinatorEpoch, e.coordinatorEpoch)
	}
	return nil
}

// applyData records the data batch h, already written at its offsets.
func (e *producerEntry) applyData(h batch.Header) {
	e.setEpoch(h.ProducerEpoch)
	e.addBatch(batchMeta{lastSeq: h.LastSequence(), lastOffset: h.LastOffset(), offsetDelta: h.LastOffsetDelta, timestamp: h.MaxTimestamp})
	e.lastTimestamp = h.MaxTimestamp
	if h.IsTransactional() && e.txnFirst < 0 {
		e.txnFirst = h.BaseOffset
	}
}

// applyMarker records the marker written at offset and reports the
// transaction it ended (ok=false for a marker without transactional data,
// which changes neither the LSO nor the transaction index).
func (e *producerEntry) applyMarker(pid int64, h batch.Header, m marker) (txn completedTxn, ok bool) {
	if e.txnFirst >= 0 {
		txn, ok = completedTxn{producerID: pid, firstOffset: e.txnFirst, lastOffset: h.BaseOffset, abort: !m.commit}, true
	}
	e.setEpoch(h.ProducerEpoch)
	e.txnFirst = -1
	e.coordinatorEpoch = m.coordinatorEpoch
	e.lastTimestamp = h.MaxTimestamp
	return txn, ok
}

// completedTxn is a transaction its marker ended.
type completedTxn struct {
	producerID              int64
	firstOffset, lastOffset int64
	abort                   bool
}

// openTxn is a transaction that is open, or ended by a marker that is not
// yet below the high watermark.
type openTxn struct {
	producerID  int64
	firstOffset int64
	lastOffset  int64 // the marker's offset once ended
}

// producerState is a log's ProducerStateManager: every producer's entry and
// the transactions still unstable. Owner: the Log's writer (wmu); the
// first unstable offset is published through Log.firstUnstable for readers.
type producerState struct {
	producers    map[int64]*producerEntry
	ongoing      []openTxn // by first offset (appends only ever grow it at the end)
	unreplicated []openTxn // ended, marker at or above the high watermark
}

func newProducerState() *producerState {
	return &producerState{producers: map[int64]*producerEntry{}}
}

// firstUnstable is the first offset of the earliest undecided or
// unreplicated transaction, -1 when there is none.
func (ps *producerState) firstUnstable() int64 {
	first := int64(-1)
	if len(ps.ongoing) > 0 {
		first = ps.ongoing[0].firstOffset
	}
	for _, t := range ps.unreplicated {
		if first < 0 || t.firstOffset < first {
			first = t.firstOffset
		}
	}
	return first
}

// lastStableFor is the LSO written into the transaction index when txn
// ends: the first offset of the earliest other open transaction, or the
// offset after the marker (Kafka's ProducerStateManager.lastStableOffset).
func (ps *producerState) lastStableFor(txn completedTxn) int64 {
	for _, t := range ps.ongoing {
		if t.producerID != txn.producerID {
			return t.firstOffset
		}
	}
	return txn.lastOffset + 1
}

// complete moves txn from the open to the unreplicated transactions.
func (ps *producerState) complete(txn completedTxn) {
	for i, t := range ps.ongoing {
		if t.producerID == txn.producerID && t.firstOffset == txn.firstOffset {
			ps.ongoing = slices.Delete(ps.ongoing, i, i+1)
			break
		}
	}
	ps.unreplicated = append(ps.unreplicated, openTxn{producerID: txn.producerID, firstOffset: txn.firstOffset, lastOffset: txn.lastOffset})
}

// onHighWatermark forgets ended transactions whose markers are below hw.
func (ps *producerState) onHighWatermark(hw int64) {
	ps.unreplicated = slices.DeleteFunc(ps.unreplicated, func(t openTxn) bool { return t.lastOffset < hw })
}

// entry returns the stored entry of pid, or a fresh one.
func (ps *producerState) entry(pid int64) producerEntry {
	if e := ps.producers[pid]; e != nil {
		return *e
	}
	return newProducerEntry()
}

// put stores e for pid, starting a transaction in the open list when e
// gained one.
func (ps *producerState) put(pid int64, e producerEntry) {
	cur := ps.producers[pid]
	if cur == nil {
		fresh := newProducerEntry()
		cur = &fresh
		ps.producers[pid] = cur
	}
	if e.txnFirst >= 0 && cur.txnFirst != e.txnFirst {
		ps.ongoing = append(ps.ongoing, openTxn{producerID: pid, firstOffset: e.txnFirst, lastOffset: -1})
		slices.SortFunc(ps.ongoing, func(a, b openTxn) int { return cmpInt64(a.firstOffset, b.firstOffset) })
	}
	*cur = e
}

// removeExpired drops producers without an open transaction whose last
// write is expirationMs or more before now (Kafka's isProducerExpired).
func (ps *producerState) removeExpired(now, expirationMs int64) int {
	n := 0
	for pid, e := range ps.producers {
		if e.txnFirst < 0 && now-e.lastTimestamp >= expirationMs {
			delete(ps.producers, pid)
			n++
		}
	}
	return n
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Control record types in a transaction marker's key (Kafka's
// ControlRecordType).
const (
	controlAbort  = 0
	controlCommit = 1
)

// marker is a decoded transaction marker (Kafka's EndTransactionMarker).
type marker struct {
	commit           bool
	coordinatorEpoch int32
}

// parseMarker decodes the control batch b (one whole batch): its first
// record's key is version int16 + type int16, its value version int16 +
// coordinator epoch int32. ok=false for control records that are not
// transaction markers (other control types), which carry no transaction.
func parseMarker(b []byte) (m marker, ok bool, err error) {
	var key, value []byte
	found := false
	err = batch.ForEachRecord(b, func(r batch.Record) bool {
		key, value, found = r.Key, r.Value, true
		return false
	})
	if err != nil {
		return marker{}, false, err
	}
	if !found || len(key) < 4 {
		return marker{}, false, nil
	}
	switch binary.BigEndian.Uint16(key[2:]) {
	case controlAbort:
	case controlCommit:
		m.commit = true
	default:
		return marker{}, false, nil
	}
	if len(value) < 6 {
		return marker{}, false, fmt.Errorf("%w: transaction marker value of %d bytes", batch.ErrCorrupt, len(value))
	}
	m.coordinatorEpoch = int32(binary.BigEndian.Uint32(value[2:]))
	return m, true, nil
}

// controlBatch builds a transaction marker batch (magic 2, transactional
// and control attributes, one record, no sequence) at offset 0; the caller
// assigns the offset and leader epoch.
func controlBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	typ := uint16(controlAbort)
	if commit {
		typ = controlCommit
	}
	// The record: attributes, timestamp delta 0, offset delta 0, a 4-byte
	// key, a 6-byte value, no headers. Every varint below fits one byte.
	rec := []byte{0, 0, 0, 4 << 1, 0, 0, byte(typ >> 8), byte(typ), 6 << 1, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(rec[11:], uint32(coordinatorEpoch))
	b := make([]byte, batch.HeaderSize+1+len(rec))
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	b[16] = 2                                      // magic
	binary.BigEndian.PutUint16(b[21:], 0x10|0x20)  // transactional | control
	binary.BigEndian.PutUint32(b[23:], 0)          // last offset delta
	binary.BigEndian.PutUint64(b[27:], uint64(ts)) // first timestamp
	binary.BigEndian.PutUint64(b[35:], uint64(ts)) // max timestamp
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], math.MaxUint32) // base sequence -1
	binary.BigEndian.PutUint32(b[57:], 1)              // one record
	b[batch.HeaderSize] = byte(len(rec) << 1)          // record length, zigzag varint
	copy(b[batch.HeaderSize+1:], rec)
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	return b
}

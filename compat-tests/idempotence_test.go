package compat

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestIdempotentProducer replays what a producer's retry looks like on the
// wire: the same idempotent batch sent twice is stored once and the retry is
// answered with the original offset; a sequence gap is refused with
// OUT_OF_ORDER_SEQUENCE_NUMBER and leaves the log unchanged.
func TestIdempotentProducer(t *testing.T) {
	b := StartBroker(t)
	cl := newClient(t, b)
	created := createTopic(t, newAdmin(t, b), "idem", 1, nil)
	versions := apiVersionsMap(t, b)

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = 60000
	init.ProducerID, init.ProducerEpoch = -1, -1
	ir, err := init.RequestWith(testCtx(t, 15*time.Second), cl)
	if err != nil || ir.ErrorCode != 0 || ir.ProducerID < 0 {
		t.Fatalf("InitProducerId: %v, error %s, id %d", err, errCode(ir.ErrorCode), ir.ProducerID)
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	ts := time.Now().UnixMilli()

	first := buildIdempotentBatch(ts, textRecords("a", 3), pid, epoch, 0)
	for try := 0; try < 2; try++ {
		res := rawProduce(t, b, versions, "idem", created.ID, map[int32][]byte{0: first})
		if res[0].ErrorCode != 0 || res[0].BaseOffset != 0 {
			t.Fatalf("idempotent batch, send #%d: error %s base %d, want no error and base 0", try+1, errCode(res[0].ErrorCode), res[0].BaseOffset)
		}
	}
	res := rawProduce(t, b, versions, "idem", created.ID, map[int32][]byte{0: buildIdempotentBatch(ts, textRecords("b", 2), pid, epoch, 3)})
	if res[0].ErrorCode != 0 || res[0].BaseOffset != 3 {
		t.Fatalf("next sequence: error %s base %d, want base 3 (duplicate must not have been appended)", errCode(res[0].ErrorCode), res[0].BaseOffset)
	}
	res = rawProduce(t, b, versions, "idem", created.ID, map[int32][]byte{0: buildIdempotentBatch(ts, textRecords("gap", 1), pid, epoch, 10)})
	if res[0].ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("sequence 10 after 4: error %s, want 45 OUT_OF_ORDER_SEQUENCE_NUMBER", errCode(res[0].ErrorCode))
	}

	recs := consumeRange(t, b, "idem", map[int32]int64{0: 5})[0]
	want := []string{"a-v0", "a-v1", "a-v2", "b-v0", "b-v1"}
	for i, r := range recs {
		if string(r.Value) != want[i] || r.ProducerID != pid {
			t.Errorf("idem@%d = %q (producer %d), want %q (producer %d)", r.Offset, r.Value, r.ProducerID, want[i], pid)
		}
	}
	if end := endOffsets(t, newAdmin(t, b), "idem")[0]; end != 5 {
		t.Fatalf("end offset %d, want 5: %s", end, "a duplicate or out-of-order batch was appended")
	}
}

package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func frameOf(req kmsg.Request, clientID string) []byte {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))
	return f.AppendRequest(nil, req, 7)
}

// FuzzReadRequest feeds arbitrary bytes through the whole decode path a
// connection uses: frame, header, body. Nothing may panic, and a frame above
// the limit must be refused before its body is read.
func FuzzReadRequest(f *testing.F) {
	seeds := []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(),
		kmsg.NewPtrMetadataRequest(),
		kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(),
		kmsg.NewPtrListOffsetsRequest(),
		kmsg.NewPtrCreateTopicsRequest(),
	}
	for _, r := range seeds {
		for v := int16(0); v <= r.MaxVersion(); v += 3 {
			r.SetVersion(v)
			f.Add(frameOf(r, "fuzz"))
		}
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		body, err := ReadFrame(bytes.NewReader(data), limit, nil)
		if err != nil {
			if len(data) >= 4 && int32(binary.BigEndian.Uint32(data)) > limit && cap(body) > limit {
				t.Fatalf("allocated %d bytes for an oversized frame", cap(body))
			}
			return
		}
		hdr, req, err := DecodeRequest(body, func(key, version int16) bool { return true })
		if err == nil && req.Key() != hdr.Key {
			t.Fatalf("decoded key %d, header says %d", req.Key(), hdr.Key)
		}
	})
}

func TestDecodeRequestRoundTrip(t *testing.T) {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	topic := kmsg.NewMetadataRequestTopic()
	topic.Topic = kmsg.StringPtr("orders")
	req.Topics = append(req.Topics, topic)
	frame := frameOf(req, "client-a")
	body, err := ReadFrame(bytes.NewReader(frame), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	hdr, got, err := DecodeRequest(body, func(int16, int16) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if hdr.ClientID != "client-a" || hdr.CorrelationID != 7 || hdr.Version != 12 {
		t.Fatalf("header = %+v", hdr)
	}
	m := got.(*kmsg.MetadataRequest)
	if len(m.Topics) != 1 || *m.Topics[0].Topic != "orders" {
		t.Fatalf("topics = %+v", m.Topics)
	}
}

func TestUnsupportedVersionKeepsHeader(t *testing.T) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(4)
	body := frameOf(req, "x")[4:]
	binary.BigEndian.PutUint16(body[2:], 99)
	hdr, got, err := DecodeRequest(body, func(key, version int16) bool { return version <= 4 })
	if got != nil || err == nil {
		t.Fatalf("want ErrUnsupported, got %v %v", got, err)
	}
	if hdr.CorrelationID != 7 || hdr.Version != 99 {
		t.Fatalf("header = %+v", hdr)
	}
}

func TestFrameLimits(t *testing.T) {
	big := binary.BigEndian.AppendUint32(nil, 1<<30)
	if _, err := ReadFrame(bytes.NewReader(big), 1<<20, nil); err == nil {
		t.Fatal("oversized frame accepted")
	}
	neg := binary.BigEndian.AppendUint32(nil, 0xfffffff0)
	if _, err := ReadFrame(bytes.NewReader(neg), 1<<20, nil); err == nil {
		t.Fatal("negative frame accepted")
	}
	short := append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3)
	if _, err := ReadFrame(bytes.NewReader(short), 1<<20, nil); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func TestNegativeArrayCountRefused(t *testing.T) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(1)
	req.ReplicaID = -1
	frame := frameOf(req, "x")
	// The topics count is the last 4 bytes: make it -5.
	binary.BigEndian.PutUint32(frame[len(frame)-4:], 0xfffffffb)
	if _, _, err := DecodeRequest(frame[4:], func(int16, int16) bool { return true }); err == nil {
		t.Fatal("negative array count accepted")
	}
	binary.BigEndian.PutUint32(frame[len(frame)-4:], 0)
	if _, _, err := DecodeRequest(frame[4:], func(int16, int16) bool { return true }); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
}

func TestProduceScan(t *testing.T) {
	for v := int16(3); v <= 8; v++ {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		req.Acks = -1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = []byte("abcdef")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		frame := frameOf(req, "x")
		if _, _, err := DecodeRequest(frame[4:], func(int16, int16) bool { return true }); err != nil {
			t.Fatalf("v%d: valid produce refused: %v", v, err)
		}
		// Lie about the partition count (just before partition int32 + records).
		at := len(frame) - 6 - 4 - 4 - 4
		binary.BigEndian.PutUint32(frame[at:], 0xffffffff)
		if _, _, err := DecodeRequest(frame[4:], func(int16, int16) bool { return true }); err == nil {
			t.Fatalf("v%d: negative partition count accepted", v)
		}
	}
}

package compat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	badMaxRequest = 1 << 20 // socket.request.max.bytes for the bad-input broker
	badMaxMessage = 65536   // message.max.bytes for the bad-input broker
	closeWait     = 5 * time.Second
)

// TestBadInput throws malformed and hostile bytes at one broker. Kafka closes
// the connection on anything it cannot parse as a supported request; it
// answers per-partition errors for bad record batches. After every case a
// fresh franz-go client must still produce and consume, and everything
// written before must be intact.
func TestBadInput(t *testing.T) {
	b := StartBroker(t,
		fmt.Sprintf("socket.request.max.bytes=%d", badMaxRequest),
		fmt.Sprintf("message.max.bytes=%d", badMaxMessage),
	)
	probe := newHealthProbe(t, b, "health")
	versions := apiVersionsMap(t, b)

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"frame_larger_than_socket_request_max_bytes", func(t *testing.T) {
			c := dialRaw(t, b)
			c.write(binary.BigEndian.AppendUint32(nil, badMaxRequest*2))
			c.write(make([]byte, 64))
			c.expectClosed(closeWait, "frame size 2 MiB > socket.request.max.bytes")
		}},
		{"negative_frame_size", func(t *testing.T) {
			c := dialRaw(t, b)
			c.write([]byte{0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4})
			c.expectClosed(closeWait, "frame size -2")
		}},
		{"truncated_request_then_close", func(t *testing.T) {
			c := dialRaw(t, b)
			c.write(binary.BigEndian.AppendUint32(nil, 100))
			c.write(c.header(3, 4, false)[:10])
			c.c.Close()
		}},
		{"truncated_header_in_complete_frame", func(t *testing.T) {
			c := dialRaw(t, b)
			c.writeFrame([]byte{0, 3, 0}) // 3 bytes: not even api key + version
			c.expectClosed(closeWait, "3-byte frame")
		}},
		{"garbage_bytes", func(t *testing.T) {
			c := dialRaw(t, b)
			c.writeFrame([]byte{0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0, 1, 0xff, 0xfe, 0x80, 0x7f, 9, 8, 7, 6})
			c.expectClosed(closeWait, "garbage frame (api key 0xdead)")
		}},
		{"tls_client_hello", func(t *testing.T) {
			c := dialRaw(t, b)
			// TLS record header (handshake, TLS 1.0 record version, length)
			// and the start of a ClientHello.
			hello := []byte{0x16, 0x03, 0x01, 0x00, 0xf8, 0x01, 0x00, 0x00, 0xf4, 0x03, 0x03}
			c.write(append(hello, bytes.Repeat([]byte{0x5a}, 32)...))
			c.expectClosed(closeWait, "TLS ClientHello")
		}},
		{"http_get", func(t *testing.T) {
			c := dialRaw(t, b)
			c.write([]byte("GET / HTTP/1.1\r\n\r\n"))
			c.expectClosed(closeWait, "HTTP GET")
		}},
		{"unknown_api_key_9999", func(t *testing.T) {
			c := dialRaw(t, b)
			c.writeFrame(c.header(9999, 0, false))
			c.expectClosed(closeWait, "api key 9999")
		}},
		{"api_versions_v99", func(t *testing.T) {
			c := dialRaw(t, b)
			body := c.header(18, 99, true)
			corr := c.corr
			body = append(body, 7, 'c', 'o', 'm', 'p', 'a', 't', 4, '1', '.', '0', 0) // v3-style body
			c.writeFrame(body)
			frame, err := c.readFrame(10 * time.Second)
			if err != nil {
				t.Fatalf("ApiVersions v99: want a v0 UNSUPPORTED_VERSION response, got %v", err)
			}
			rest, err := c.parseHeader(frame, corr, false)
			if err != nil {
				t.Fatalf("ApiVersions v99 response header: %v", err)
			}
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.Version = 0
			if err := resp.ReadFrom(rest); err != nil {
				t.Fatalf("ApiVersions v99: response is not a v0 body: %v (%x)", err, rest)
			}
			if resp.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Fatalf("ApiVersions v99: error %s, want 35 UNSUPPORTED_VERSION", errCode(resp.ErrorCode))
			}
			keys := map[int16]bool{}
			for _, k := range resp.ApiKeys {
				keys[k.ApiKey] = true
			}
			if !keys[0] || !keys[1] || !keys[3] || !keys[18] {
				t.Fatalf("ApiVersions v99: api list %v lacks Produce/Fetch/Metadata/ApiVersions", resp.ApiKeys)
			}
			// The connection stays usable: a client retries at a lower version.
			req := kmsg.NewPtrApiVersionsRequest()
			req.Version = 3
			req.ClientSoftwareName = "compat"
			req.ClientSoftwareVersion = "1.0"
			again := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
			if again.ErrorCode != 0 || len(again.ApiKeys) == 0 {
				t.Fatalf("ApiVersions v3 retry: error %s, %d keys", errCode(again.ErrorCode), len(again.ApiKeys))
			}
		}},
		{"metadata_unsupported_version", func(t *testing.T) {
			for _, v := range []int16{versions[3].MaxVersion + 1, 99} {
				c := dialRaw(t, b)
				c.writeFrame(append(c.header(3, v, true), 0, 0)) // empty topics, tags
				c.expectClosed(closeWait, fmt.Sprintf("Metadata v%d", v))
			}
		}},
		{"negative_array_count", func(t *testing.T) {
			c := dialRaw(t, b)
			body := c.header(2, 1, false) // ListOffsets v1: replica_id, topics[] (not nullable)
			body = binary.BigEndian.AppendUint32(body, ^uint32(0))
			body = binary.BigEndian.AppendUint32(body, uint32(0xfffffffb)) // topics count -5
			c.writeFrame(body)
			c.expectClosed(closeWait, "ListOffsets with topics count -5")
		}},
		{"client_id_length_lies", func(t *testing.T) {
			c := dialRaw(t, b)
			body := []byte{0, 3, 0, 4, 0, 0, 0, 9, 0x7f, 0xff, 'a', 'b', 'c'} // Metadata v4, client id len 32767
			c.writeFrame(body)
			c.expectClosed(closeWait, "client id length 32767 with 3 bytes present")
		}},
		{"topic_name_length_lies", func(t *testing.T) {
			c := dialRaw(t, b)
			body := c.header(3, 4, false)
			body = binary.BigEndian.AppendUint32(body, 1)    // one topic
			body = binary.BigEndian.AppendUint16(body, 1000) // name length 1000…
			body = append(body, 'x', 'y')                    // …2 bytes present
			c.writeFrame(body)
			c.expectClosed(closeWait, "topic name length 1000 with 2 bytes present")
		}},
		{"produce_v2_removed_in_kafka_4", func(t *testing.T) {
			if versions[0].MinVersion != 0 {
				t.Errorf("ApiVersions advertises Produce min %d; Kafka 4 advertises 0 (KAFKA-18659)", versions[0].MinVersion)
			}
			c := dialRaw(t, b)
			body := c.header(0, 2, false)
			body = binary.BigEndian.AppendUint16(body, 1)    // acks=1
			body = binary.BigEndian.AppendUint32(body, 5000) // timeout
			body = binary.BigEndian.AppendUint32(body, 1)    // 1 topic
			body = binary.BigEndian.AppendUint16(body, uint16(len(probe.topic)))
			body = append(body, probe.topic...)
			body = binary.BigEndian.AppendUint32(body, 1) // 1 partition
			body = binary.BigEndian.AppendUint32(body, 0) // partition 0
			body = binary.BigEndian.AppendUint32(body, 0) // empty message set
			c.writeFrame(body)
			// Kafka 4 parses the header, finds version 2 below Produce's
			// lowest valid version (3) and closes: no response is written.
			c.expectClosed(closeWait, "Produce v2")
		}},
		{"bad_crc_is_corrupt_message", func(t *testing.T) { badCRC(t, b, versions) }},
		{"batch_larger_than_message_max_bytes", func(t *testing.T) { tooLarge(t, b, versions) }},
		{"acks0_then_pipelined_requests_in_order", func(t *testing.T) { acksZeroOrder(t, b, versions, probe.topic) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			if err := b.crashed(); err != nil {
				t.Fatalf("after %s: %v", tc.name, err)
			}
			probe.check(t, b, tc.name)
		})
		if err := b.crashed(); err != nil {
			t.Fatalf("broker died at case %s; later cases cannot run: %v", tc.name, err)
		}
	}
}

// apiVersionsMap asks the broker for its ApiVersions (v3) on a raw conn.
func apiVersionsMap(t *testing.T, b *Broker) map[int16]kmsg.ApiVersionsResponseApiKey {
	t.Helper()
	c := dialRaw(t, b)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "compat"
	req.ClientSoftwareVersion = "1.0"
	resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions v3: %s", errCode(resp.ErrorCode))
	}
	out := make(map[int16]kmsg.ApiVersionsResponseApiKey)
	for _, k := range resp.ApiKeys {
		out[k.ApiKey] = k
	}
	c.c.Close()
	return out
}

// produceVersion picks the highest Produce version both kmsg and the broker
// know; requests carry both topic name and ID so any version encodes.
func produceVersion(t *testing.T, versions map[int16]kmsg.ApiVersionsResponseApiKey) int16 {
	t.Helper()
	v, ok := versions[0]
	if !ok {
		t.Fatal("broker does not advertise Produce")
	}
	return min(v.MaxVersion, (&kmsg.ProduceRequest{}).MaxVersion())
}

// rawProduce sends one Produce on a fresh raw connection and returns the
// per-partition results keyed by partition.
func rawProduce(t *testing.T, b *Broker, versions map[int16]kmsg.ApiVersionsResponseApiKey, topic string, id [16]byte, batches map[int32][]byte) map[int32]kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = produceVersion(t, versions)
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for p, batch := range batches {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, batch
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	c := dialRaw(t, b)
	resp := c.roundTrip(req).(*kmsg.ProduceResponse)
	out := make(map[int32]kmsg.ProduceResponseTopicPartition)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = rp
		}
	}
	if len(out) != len(batches) {
		t.Fatalf("produce response has %d partitions, want %d: %+v", len(out), len(batches), resp.Topics)
	}
	return out
}

func textRecords(prefix string, n int) []rawRecord {
	out := make([]rawRecord, n)
	for i := range out {
		out[i] = rawRecord{
			key:     []byte(fmt.Sprintf("%s-k%d", prefix, i)),
			value:   []byte(fmt.Sprintf("%s-v%d", prefix, i)),
			headers: [][2]string{{"h", prefix}},
			tsDelta: int64(i),
		}
	}
	return out
}

// badCRC: a batch whose bytes do not match its CRC gets CORRUPT_MESSAGE and
// nothing of it is written, while a good batch for another partition in the
// same request is appended.
func badCRC(t *testing.T, b *Broker, versions map[int16]kmsg.ApiVersionsResponseApiKey) {
	adm := newAdmin(t, b)
	created := createTopic(t, adm, "crc", 2, nil)
	ts := time.Now().UnixMilli()
	good := buildBatch(ts, textRecords("good", 3))
	res := rawProduce(t, b, versions, "crc", created.ID, map[int32][]byte{0: good})
	if res[0].ErrorCode != 0 || res[0].BaseOffset != 0 {
		t.Fatalf("good batch: error %s base %d", errCode(res[0].ErrorCode), res[0].BaseOffset)
	}

	bad := buildBatch(ts, textRecords("bad", 3))
	bad[len(bad)-3] ^= 0x01 // flip a bit in the last record; CRC now wrong
	res = rawProduce(t, b, versions, "crc", created.ID, map[int32][]byte{0: bad, 1: buildBatch(ts, textRecords("p1", 2))})
	if res[0].ErrorCode != kerr.CorruptMessage.Code {
		t.Errorf("bad-CRC batch: error %s, want 2 CORRUPT_MESSAGE", errCode(res[0].ErrorCode))
	}
	if res[1].ErrorCode != 0 || res[1].BaseOffset != 0 {
		t.Errorf("good batch beside a bad one: error %s base %d, want 0/0", errCode(res[1].ErrorCode), res[1].BaseOffset)
	}
	if got := endOffsets(t, adm, "crc"); got[0] != 3 || got[1] != 2 {
		t.Fatalf("end offsets after bad CRC %v, want p0=3 (bad batch not written) p1=2", got)
	}
	recs := consumeRange(t, b, "crc", map[int32]int64{0: 3, 1: 2})
	for p, prefix := range map[int32]string{0: "good", 1: "p1"} {
		for i, r := range recs[p] {
			if want := fmt.Sprintf("%s-v%d", prefix, i); string(r.Value) != want || r.Offset != int64(i) {
				t.Errorf("crc/%d@%d = %q, want %q at %d", p, r.Offset, r.Value, want, i)
			}
		}
	}
}

// tooLarge: a batch above message.max.bytes gets MESSAGE_TOO_LARGE and
// leaves the log untouched.
func tooLarge(t *testing.T, b *Broker, versions map[int16]kmsg.ApiVersionsResponseApiKey) {
	adm := newAdmin(t, b)
	created := createTopic(t, adm, "large", 1, nil)
	big := buildBatch(time.Now().UnixMilli(), []rawRecord{{value: bytes.Repeat([]byte("L"), badMaxMessage+1000)}})
	res := rawProduce(t, b, versions, "large", created.ID, map[int32][]byte{0: big})
	if res[0].ErrorCode != kerr.MessageTooLarge.Code {
		t.Errorf("%d-byte batch with message.max.bytes=%d: error %s, want 10 MESSAGE_TOO_LARGE", len(big), badMaxMessage, errCode(res[0].ErrorCode))
	}
	small := buildBatch(time.Now().UnixMilli(), []rawRecord{{value: bytes.Repeat([]byte("s"), badMaxMessage/2)}})
	res = rawProduce(t, b, versions, "large", created.ID, map[int32][]byte{0: small})
	if res[0].ErrorCode != 0 || res[0].BaseOffset != 0 {
		t.Fatalf("batch under the limit after a rejected one: error %s base %d, want 0/0", errCode(res[0].ErrorCode), res[0].BaseOffset)
	}
	recs := consumeRange(t, b, "large", map[int32]int64{0: 1}, kgo.FetchMaxBytes(4<<20))
	if len(recs[0]) != 1 || len(recs[0][0].Value) != badMaxMessage/2 {
		t.Fatalf("large topic content: %d records", len(recs[0]))
	}
}

// acksZeroOrder: an acks=0 Produce gets no response, and requests pipelined
// after it are answered in the order they were sent. An acks=0 Produce that
// fails (unknown topic) makes Kafka close the connection, the only way it
// can tell such a producer to refresh its metadata.
func acksZeroOrder(t *testing.T, b *Broker, versions map[int16]kmsg.ApiVersionsResponseApiKey, topic string) {
	created := createTopic(t, newAdmin(t, b), "acks0", 1, nil)
	acks0 := func(topic string, id [16]byte) *kmsg.ProduceRequest {
		prod := kmsg.NewPtrProduceRequest()
		prod.Version = produceVersion(t, versions)
		prod.Acks = 0
		prod.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = buildBatch(time.Now().UnixMilli(), textRecords("acks0", 2))
		rt.Partitions = append(rt.Partitions, rp)
		prod.Topics = append(prod.Topics, rt)
		return prod
	}

	c := dialRaw(t, b)
	c.send(acks0("acks0", created.ID))
	var corrs []int32
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			req := kmsg.NewPtrApiVersionsRequest()
			req.Version = 3
			req.ClientSoftwareName, req.ClientSoftwareVersion = "compat", "1"
			corrs = append(corrs, c.send(req))
		} else {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = min(versions[3].MaxVersion, 12)
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, mt)
			corrs = append(corrs, c.send(req))
		}
	}
	for _, want := range corrs {
		frame, err := c.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("pipelined response for correlation %d: %v", want, err)
		}
		if got := int32(binary.BigEndian.Uint32(frame)); got != want {
			t.Fatalf("response correlation %d, want %d (acks=0 must not answer; order must hold)", got, want)
		}
	}
	if end := endOffsets(t, newAdmin(t, b), "acks0")[0]; end != 2 {
		t.Errorf("acks=0 batch of 2 records: end offset %d, want 2", end)
	}

	c = dialRaw(t, b)
	c.send(acks0("acks0-missing", [16]byte{1}))
	c.expectClosed(closeWait, "acks=0 Produce to an unknown topic")
}

package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// TestFetchWireMatchesKmsg checks the hand-written zero-copy Fetch encoding
// against kmsg's, byte for byte, at every served version, with the record
// bytes sent by sendfile over a real TCP connection.
func TestFetchWireMatchesKmsg(t *testing.T) {
	records := bytes.Repeat([]byte("0123456789abcdef"), 100)
	path := filepath.Join(t.TempDir(), "seg.log")
	if err := os.WriteFile(path, append([]byte("junk-before"), records...), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	clientReader := bufio.NewReader(client)

	for v := apis[kmsg.Fetch].minVersion; v <= apis[kmsg.Fetch].maxVersion; v++ {
		withData := &fetchPart{
			sp:            &sessionPartition{topic: "orders", topicID: [16]byte{1, 2, 3}, partition: 4},
			highWatermark: 99, lastStableOffset: 99, logStartOffset: 7, preferredReadReplica: -1,
			data: storage.ReadResult{File: f, Pos: int64(len("junk-before")), Size: len(records)},
		}
		failed := &fetchPart{
			sp:            &sessionPartition{topic: "orders", topicID: [16]byte{1, 2, 3}, partition: 5},
			errCode:       6,
			highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, preferredReadReplica: -1,
		}
		parts := []*fetchPart{withData, failed}
		if v >= 11 {
			// A leader sending a consumer to another replica (KIP-392).
			parts = append(parts, &fetchPart{
				sp:            &sessionPartition{topic: "orders", topicID: [16]byte{1, 2, 3}, partition: 6},
				highWatermark: 50, lastStableOffset: 48, logStartOffset: 3, preferredReadReplica: 2,
			})
		}
		hdr := fetchResponseHeader{version: v, sessionID: 42, topics: []fetchTopicOut{{name: "orders", id: [16]byte{1, 2, 3}, parts: parts}}}
		rack := "rack-a"
		if v >= 16 {
			// KIP-951: the failed partition names its leader, and the
			// response says how to reach the leaders named.
			failed.currentLeader = &leaderHint{id: 3, epoch: 9}
			hdr.nodeEndpoints = []hintNode{{id: 3, host: "broker-3.example", port: 9094, rack: &rack}, {id: 2, host: "b2", port: 9093}}
		}
		w := encodeFetchResponse(hdr, nil)
		bw := bufio.NewWriter(server)
		if err := w.writeTo(server, bw, 1234); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := protocol.ReadFrame(clientReader, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}

		want := kmsg.NewPtrFetchResponse()
		want.SetVersion(v)
		want.SessionID = 42
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = "orders", [16]byte{1, 2, 3}
		p1 := kmsg.NewFetchResponseTopicPartition()
		p1.Partition, p1.HighWatermark, p1.LastStableOffset, p1.LogStartOffset = 4, 99, 99, 7
		p1.RecordBatches = records
		p2 := kmsg.NewFetchResponseTopicPartition()
		p2.Partition, p2.ErrorCode, p2.HighWatermark, p2.LastStableOffset, p2.LogStartOffset = 5, 6, -1, -1, -1
		p2.RecordBatches = []byte{}
		if v >= 16 {
			p2.CurrentLeader.LeaderID, p2.CurrentLeader.LeaderEpoch = 3, 9
			b3 := kmsg.NewFetchResponseBroker()
			b3.NodeID, b3.Host, b3.Port, b3.Rack = 3, "broker-3.example", 9094, &rack
			b2 := kmsg.NewFetchResponseBroker()
			b2.NodeID, b2.Host, b2.Port = 2, "b2", 9093
			want.Brokers = []kmsg.FetchResponseBroker{b3, b2}
		}
		rt.Partitions = []kmsg.FetchResponseTopicPartition{p1, p2}
		if v >= 11 {
			p3 := kmsg.NewFetchResponseTopicPartition()
			p3.Partition, p3.HighWatermark, p3.LastStableOffset, p3.LogStartOffset, p3.PreferredReadReplica = 6, 50, 48, 3, 2
			p3.RecordBatches = []byte{}
			rt.Partitions = append(rt.Partitions, p3)
		}
		want.Topics = []kmsg.FetchResponseTopic{rt}
		wantFrame := encodeResponse(nil, requestInfo{key: int16(kmsg.Fetch), version: v, correlationID: 1234}, want)
		if !bytes.Equal(got, wantFrame[4:]) {
			t.Fatalf("v%d: encoding differs from kmsg\n got %x\nwant %x", v, got[:min(len(got), 80)], wantFrame[4:min(len(wantFrame), 84)])
		}
		// And kmsg can read ours back.
		back := kmsg.NewPtrFetchResponse()
		back.SetVersion(v)
		skip := 4
		if v >= 12 {
			skip = 5
		}
		if err := back.ReadFrom(got[skip:]); err != nil {
			t.Fatalf("v%d: kmsg cannot decode: %v", v, err)
		}
		if !bytes.Equal(back.Topics[0].Partitions[0].RecordBatches, records) {
			t.Fatalf("v%d: records differ", v)
		}
	}
	_ = io.EOF
}

// TestAPITableMatchesKmsg keeps the dispatch table within what kmsg encodes.
func TestAPITableMatchesKmsg(t *testing.T) {
	for key := range apis {
		a := &apis[key]
		if a.handle == nil {
			continue
		}
		req := kmsg.RequestForKey(int16(key))
		if req == nil {
			t.Fatalf("api key %d is not known to kmsg", key)
		}
		if a.maxVersion > req.MaxVersion() {
			t.Errorf("%s: table max v%d, kmsg max v%d", kmsg.NameForKey(int16(key)), a.maxVersion, req.MaxVersion())
		}
		if a.maxVersion < req.MaxVersion() {
			t.Logf("%s: kmsg knows up to v%d; we serve up to v%d", kmsg.NameForKey(int16(key)), req.MaxVersion(), a.maxVersion)
		}
		if a.minVersion > a.maxVersion {
			t.Errorf("%s: min %d > max %d", kmsg.NameForKey(int16(key)), a.minVersion, a.maxVersion)
		}
	}
}

package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// metadataAllowCreate asks for one topic with auto-creation allowed, through
// the client (which picks the highest version both sides know).
func metadataAllowCreate(t *testing.T, cl *kgo.Client, topic string) kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("Metadata(%s) answered %d topics", topic, len(resp.Topics))
	}
	return resp.Topics[0]
}

// waitForTopic polls Metadata (auto-creation allowed) until the topic is
// answered without error and with the given number of partitions.
func waitForTopic(t *testing.T, cl *kgo.Client, topic string, partitions int) {
	t.Helper()
	waitUntil(t, 10*time.Second, topic+" is answered with its partitions", func() bool {
		mt := metadataAllowCreate(t, cl, topic)
		return mt.ErrorCode == 0 && len(mt.Partitions) == partitions
	})
}

// wantUnknownNoPartitions checks the answer Kafka 4.x gives for a topic a
// Metadata request has just asked its controller to create
// (AutoTopicCreationManager.sendCreateTopicRequest).
func wantUnknownNoPartitions(t *testing.T, what string, mt kmsg.MetadataResponseTopic) {
	t.Helper()
	if mt.ErrorCode != kerr.UnknownTopicOrPartition.Code || len(mt.Partitions) != 0 || mt.TopicID != [16]byte{} {
		t.Fatalf("%s: error %v, %d partitions, topic ID %x; want UNKNOWN_TOPIC_OR_PARTITION with no partitions and no ID (creation is asynchronous, as in Kafka)",
			what, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions), mt.TopicID)
	}
}

// TestMetadataAutoCreateIsAsynchronous: the Metadata request that makes the
// broker create a topic is answered as Kafka 4.x answers it — the topic
// unknown, no partitions — and later requests see the topic. A client that
// deletes a topic and reads its partitions straight away therefore gets an
// empty answer, not the partitions of the topic re-created behind it.
func TestMetadataAutoCreateIsAsynchronous(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) { c.NumPartitions = 1 })
	cl := newClient(t, tb.addr)

	wantUnknownNoPartitions(t, "first Metadata for a new topic", metadataAllowCreate(t, cl, "auto-new"))
	waitForTopic(t, cl, "auto-new", 1)

	createTopic(t, cl, "recreated", 3, nil)
	waitForTopic(t, cl, "recreated", 3)
	del := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr("recreated")
	del.Topics = append(del.Topics, dt)
	del.TopicNames = []string{"recreated"}
	dresp, err := del.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(dresp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wantUnknownNoPartitions(t, "Metadata right after DeleteTopics", metadataAllowCreate(t, cl, "recreated"))
	// The request did ask for the topic: it comes back with num.partitions.
	waitForTopic(t, cl, "recreated", 1)

	// Every version that can create answers the same way (v0-v3 always
	// allow auto-creation).
	for _, v := range []int16{0, 3, 4, 9, 12} {
		name := fmt.Sprintf("auto-v%d", v)
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		req.AllowAutoTopicCreation = true
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
		resp := rawRequest(t, cl, req).(*kmsg.MetadataResponse)
		wantUnknownNoPartitions(t, fmt.Sprintf("Metadata v%d for %s", v, name), resp.Topics[0])
		waitForTopic(t, cl, name, 1)
	}
}

// TestMetadataAutoCreateInternalTopic: auto-creating __transaction_state
// uses the transaction coordinator's settings, as Kafka's
// AutoTopicCreationManager.creatableTopic does, and the first answer marks
// the topic internal.
func TestMetadataAutoCreateInternalTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.NumPartitions = 1
		c.TransactionStateLogNumPartitions = 3
		c.TransactionStateLogReplicationFactor = 1
		c.TransactionStateLogMinIsr = 1
	})
	cl := newClient(t, tb.addr)
	mt := metadataAllowCreate(t, cl, transactionTopic)
	wantUnknownNoPartitions(t, "first Metadata for "+transactionTopic, mt)
	if !mt.IsInternal {
		t.Errorf("%s answered not internal", transactionTopic)
	}
	waitForTopic(t, cl, transactionTopic, 3)
	topic := tb.view.Image().Topics[transactionTopic]
	if got := topic.Configs["cleanup.policy"]; got != "compact" {
		t.Errorf("auto-created %s has cleanup.policy %q, want compact", transactionTopic, got)
	}
}

// TestFranzProducesToAutoCreatedTopic: franz-go with AllowAutoTopicCreation
// produces to a topic that does not exist yet without the user seeing an
// error: it retries the UNKNOWN_TOPIC_OR_PARTITION of the first Metadata.
func TestFranzProducesToAutoCreatedTopic(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr, kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("auto-produce"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto-produce", Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatalf("produce to an auto-created topic: %v", err)
	}
	fetches := cl.PollRecords(ctx, 1)
	if err := fetches.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "first" || recs[0].Offset != 0 {
		t.Fatalf("read back %d records: %+v", len(recs), recs)
	}
}

package compat

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAdmin covers the topic-management and cluster APIs on one broker.
func TestAdmin(t *testing.T) {
	b := StartBroker(t)
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)

	t.Run("api_versions_sanity", func(t *testing.T) {
		versions := apiVersionsMap(t, b)
		if p := versions[0]; p.MinVersion != 0 || p.MaxVersion < 7 {
			t.Errorf("Produce advertised %d-%d; Kafka 4 advertises min 0 (KAFKA-18659) and max >= 7 (zstd)", p.MinVersion, p.MaxVersion)
		}
		required := []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19, 20, 22, 32, 37, 44, 60}
		for _, k := range required {
			if _, ok := versions[k]; !ok {
				t.Errorf("ApiVersions lacks %s (key %d)", kmsg.NameForKey(k), k)
			}
		}
		for k, v := range versions {
			if v.MinVersion < 0 || v.MinVersion > v.MaxVersion {
				t.Errorf("%s: bad range %d-%d", kmsg.NameForKey(k), v.MinVersion, v.MaxVersion)
			}
			if req := kmsg.RequestForKey(k); req == nil {
				t.Errorf("ApiVersions advertises unknown key %d", k)
			} else if v.MaxVersion > req.MaxVersion() {
				t.Errorf("%s: advertised max %d above the newest known version %d", kmsg.NameForKey(k), v.MaxVersion, req.MaxVersion())
			}
		}
		// librdkafka enables features by ApiVersions overlap: LZ4 needs
		// FindCoordinator v0, idempotence InitProducerId v0, groups
		// JoinGroup/SyncGroup/Heartbeat/LeaveGroup v0. Kafka 4 keeps
		// all of these at min 0.
		for _, k := range []int16{10, 11, 12, 13, 14, 22} {
			if v, ok := versions[k]; ok && v.MinVersion != 0 {
				t.Errorf("%s advertised from v%d; Kafka 4 advertises v0 and librdkafka depends on it", kmsg.NameForKey(k), v.MinVersion)
			}
		}
		if v := versions[18]; v.MaxVersion < 3 {
			t.Errorf("ApiVersions max %d, want >= 3 (flexible)", v.MaxVersion)
		}
	})

	t.Run("metadata_null_vs_empty_topics", func(t *testing.T) {
		createTopic(t, adm, "md-a", 2, nil)
		createTopic(t, adm, "md-b", 1, nil)
		all := metadataTopics(t, cl, nil)
		names := topicNames(all)
		if !slices.Contains(names, "md-a") || !slices.Contains(names, "md-b") {
			t.Errorf("Metadata(null topics) = %v, want all topics", names)
		}
		none := metadataTopics(t, cl, []string{})
		if len(none.Topics) != 0 {
			t.Errorf("Metadata(empty topic list) returned %d topics %v, want none", len(none.Topics), topicNames(none))
		}
		if len(none.Brokers) != 1 || none.Brokers[0].NodeID != 1 {
			t.Errorf("Metadata brokers = %+v, want node 1", none.Brokers)
		}
		one := metadataTopics(t, cl, []string{"md-a"})
		if len(one.Topics) != 1 || len(one.Topics[0].Partitions) != 2 || one.Topics[0].ErrorCode != 0 {
			t.Errorf("Metadata(md-a) = %+v", one.Topics)
		}
	})

	t.Run("auto_create_on_metadata", func(t *testing.T) {
		// A request that does not allow auto-creation must not create.
		req := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("auto-no")
		req.Topics = append(req.Topics, mt)
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Metadata(auto-no, allow=false): %s, want UNKNOWN_TOPIC_OR_PARTITION", errCode(resp.Topics[0].ErrorCode))
		}
		// Allowed and enabled (Kafka's default): the topic appears with
		// num.partitions (default 1) partitions.
		waitFor(t, 15*time.Second, "auto-created topic auto-yes", func() error {
			req := kmsg.NewPtrMetadataRequest()
			req.AllowAutoTopicCreation = true
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr("auto-yes")
			req.Topics = append(req.Topics, mt)
			resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
			if err != nil {
				return err
			}
			tp := resp.Topics[0]
			if tp.ErrorCode != 0 {
				return kerr.ErrorForCode(tp.ErrorCode)
			}
			if len(tp.Partitions) != 1 || tp.Partitions[0].Leader != 1 {
				return fmt.Errorf("partitions %+v", tp.Partitions)
			}
			return nil
		})
		md := metadataTopics(t, cl, nil)
		if slices.Contains(topicNames(md), "auto-no") {
			t.Errorf("auto-no was created although the request did not allow it")
		}
	})

	t.Run("create_topics_validate_only", func(t *testing.T) {
		ctx := testCtx(t, 15*time.Second)
		resp, err := adm.ValidateCreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": str("1000")}, "validated")
		if err != nil {
			t.Fatal(err)
		}
		if r := resp["validated"]; r.Err != nil || r.NumPartitions != 3 {
			t.Errorf("validate-only create: err %v partitions %d", r.Err, r.NumPartitions)
		}
		if slices.Contains(topicNames(metadataTopics(t, cl, nil)), "validated") {
			t.Errorf("validate-only CreateTopics created the topic")
		}
		for name, want := range map[string]*kerr.Error{
			"bad/name":    kerr.InvalidTopicException,
			"..":          kerr.InvalidTopicException,
			"":            kerr.InvalidTopicException,
			longName(250): kerr.InvalidTopicException,
		} {
			resp, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp[name].Err; got != want {
				t.Errorf("validate create %.20q: %v, want %v", name, got, want)
			}
		}
		resp, err = adm.ValidateCreateTopics(ctx, 1, 1, map[string]*string{"no.such.config": str("1")}, "badcfg")
		if err != nil {
			t.Fatal(err)
		}
		if got := resp["badcfg"].Err; got != kerr.InvalidConfig {
			t.Errorf("create with unknown config: %v, want INVALID_CONFIG", got)
		}
		resp, err = adm.ValidateCreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": str("soon")}, "badval")
		if err != nil {
			t.Fatal(err)
		}
		if got := resp["badval"].Err; got != kerr.InvalidConfig {
			t.Errorf("create with retention.ms=soon: %v, want INVALID_CONFIG", got)
		}
		createTopic(t, adm, "dup", 1, nil)
		resp, err = adm.CreateTopics(ctx, 1, 1, nil, "dup")
		if err != nil {
			t.Fatal(err)
		}
		if got := resp["dup"].Err; got != kerr.TopicAlreadyExists {
			t.Errorf("create existing topic: %v, want TOPIC_ALREADY_EXISTS", got)
		}
	})

	t.Run("explicit_replica_assignment", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = "assigned"
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		for p := int32(0); p < 3; p++ {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = p, []int32{1}
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		bad := kmsg.NewCreateTopicsRequestTopic()
		bad.Topic = "assigned-bad"
		bad.NumPartitions, bad.ReplicationFactor = -1, -1
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = 0, []int32{7}
		bad.ReplicaAssignment = append(bad.ReplicaAssignment, a)
		req.Topics = append(req.Topics, rt, bad)
		resp, err := req.RequestWith(testCtx(t, 15*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		codes := map[string]int16{}
		for _, tp := range resp.Topics {
			codes[tp.Topic] = tp.ErrorCode
		}
		if codes["assigned"] != 0 {
			t.Fatalf("create with replica assignment: %s", errCode(codes["assigned"]))
		}
		if codes["assigned-bad"] != kerr.InvalidReplicaAssignment.Code {
			t.Errorf("assignment to unknown broker 7: %s, want 39 INVALID_REPLICA_ASSIGNMENT", errCode(codes["assigned-bad"]))
		}
		waitTopicReady(t, adm, "assigned", 3)
		md := metadataTopics(t, cl, []string{"assigned"})
		for _, p := range md.Topics[0].Partitions {
			if !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) {
				t.Errorf("assigned/%d replicas %v isr %v, want [1]", p.Partition, p.Replicas, p.ISR)
			}
		}
	})

	t.Run("topic_configs", func(t *testing.T) {
		createTopic(t, adm, "configured", 1, map[string]*string{
			"retention.ms":      str("123456"),
			"cleanup.policy":    str("compact"),
			"max.message.bytes": str("20000"),
		})
		want := map[string]string{"retention.ms": "123456", "cleanup.policy": "compact", "max.message.bytes": "20000"}
		checkConfigs(t, adm, "configured", want)

		ctx := testCtx(t, 15*time.Second)
		alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: str("654321")},
			{Op: kadm.DeleteConfig, Name: "cleanup.policy"},
		}, "configured")
		if err != nil || alter[0].Err != nil {
			t.Fatalf("incremental alter: %v / %+v", err, alter)
		}
		want["retention.ms"] = "654321"
		want["cleanup.policy"] = "delete" // back to the broker default
		checkConfigs(t, adm, "configured", want)

		// The topic-level max.message.bytes is enforced on produce. Kafka
		// compares the batch as sent (compressed), so send it uncompressed.
		p := newClient(t, b, kgo.DefaultProduceTopic("configured"), kgo.ProducerBatchCompression(kgo.NoCompression()))
		err = p.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: make([]byte, 30000)}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("30000-byte record into max.message.bytes=20000 topic: %v, want MESSAGE_TOO_LARGE", err)
		}
	})

	t.Run("create_partitions", func(t *testing.T) {
		createTopic(t, adm, "grow", 2, nil)
		ctx := testCtx(t, 15*time.Second)
		resp, err := adm.UpdatePartitions(ctx, 5, "grow")
		if err != nil || resp["grow"].Err != nil {
			t.Fatalf("grow to 5 partitions: %v / %v", err, resp["grow"].Err)
		}
		waitTopicReady(t, adm, "grow", 5)
		resp, err = adm.UpdatePartitions(ctx, 3, "grow")
		if err != nil {
			t.Fatal(err)
		}
		if got := resp["grow"].Err; got != kerr.InvalidPartitions {
			t.Errorf("shrink 5 -> 3: %v, want INVALID_PARTITIONS", got)
		}
		p := newClient(t, b, kgo.DefaultProduceTopic("grow"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		r := &kgo.Record{Partition: 4, Value: []byte("in new partition")}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to new partition 4: %v", err)
		}
		recs := consumeRange(t, b, "grow", map[int32]int64{4: 1})
		if string(recs[4][0].Value) != "in new partition" {
			t.Errorf("grow/4 content %q", recs[4][0].Value)
		}
	})

	t.Run("delete_topics_by_name_and_id", func(t *testing.T) {
		createTopic(t, adm, "del-name", 2, nil)
		byID := createTopic(t, adm, "del-id", 2, nil)
		if byID.ID == (kadm.TopicID{}) {
			t.Fatalf("CreateTopics returned no topic ID")
		}
		deleteAndCheckGone(t, b, adm, "del-name")

		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis = 10000
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.TopicID = byID.ID
		req.Topics = append(req.Topics, dt)
		resp, err := req.RequestWith(testCtx(t, 15*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if req.Version < 6 {
			t.Fatalf("DeleteTopics negotiated v%d; deleting by ID needs v6+", req.Version)
		}
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("DeleteTopics by ID: %+v", resp.Topics)
		}
		if n := resp.Topics[0].Topic; n == nil || *n != "del-id" {
			t.Errorf("DeleteTopics by ID answered name %v, want del-id", n)
		}
		if slices.Contains(topicNames(metadataTopics(t, newClient(t, b), nil)), "del-id") {
			t.Fatalf("topic deleted by ID still in Metadata")
		}
		// Deleting an unknown ID answers UNKNOWN_TOPIC_ID.
		again, err := req.RequestWith(testCtx(t, 15*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if c := again.Topics[0].ErrorCode; c != kerr.UnknownTopicID.Code {
			t.Errorf("delete deleted ID again: %s, want 100 UNKNOWN_TOPIC_ID", errCode(c))
		}
	})

	t.Run("describe_cluster", func(t *testing.T) {
		req := kmsg.NewPtrDescribeClusterRequest()
		resp, err := req.RequestWith(testCtx(t, 15*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 || resp.ClusterID == "" || resp.ControllerID != 1 {
			t.Errorf("DescribeCluster: error %s cluster %q controller %d", errCode(resp.ErrorCode), resp.ClusterID, resp.ControllerID)
		}
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 ||
			fmt.Sprintf("%s:%d", resp.Brokers[0].Host, resp.Brokers[0].Port) != b.Addr() {
			t.Errorf("DescribeCluster brokers %+v, want node 1 at %s", resp.Brokers, b.Addr())
		}
		md := metadataTopics(t, cl, []string{})
		if md.ClusterID == nil || *md.ClusterID != resp.ClusterID {
			t.Errorf("Metadata cluster ID %v differs from DescribeCluster %q", md.ClusterID, resp.ClusterID)
		}
	})
}

// TestAutoCreateDisabled: with auto.create.topics.enable=false, Metadata
// never creates topics, even when the request allows it.
func TestAutoCreateDisabled(t *testing.T) {
	b := StartBroker(t, "auto.create.topics.enable=false")
	cl := newClient(t, b)
	for i := 0; i < 3; i++ {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("never")
		req.Topics = append(req.Topics, mt)
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.Topics[0].ErrorCode; c != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("Metadata(never, allow=true) with auto-create off: %s, want UNKNOWN_TOPIC_OR_PARTITION", errCode(c))
		}
	}
	lt, err := kadm.NewClient(cl).ListTopics(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if lt.Has("never") {
		t.Fatalf("topic created although auto.create.topics.enable=false")
	}
}

func checkConfigs(t *testing.T, adm *kadm.Client, topic string, want map[string]string) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testCtx(t, 15*time.Second), topic)
	if err != nil {
		t.Errorf("describe configs %s: %v", topic, err)
		return
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Errorf("describe configs %s: %v / %v", topic, err, rc.Err)
		return
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	for k, v := range want {
		c, ok := got[k]
		if !ok {
			t.Errorf("%s: config %s missing from DescribeConfigs", topic, k)
			continue
		}
		if c.MaybeValue() != v {
			t.Errorf("%s: %s = %q, want %q", topic, k, c.MaybeValue(), v)
		}
	}
	// DescribeConfigs is complete: Kafka lists every topic config.
	for _, k := range []string{"segment.bytes", "retention.bytes", "min.insync.replicas", "message.timestamp.type", "compression.type"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: DescribeConfigs lacks %s", topic, k)
		}
	}
}

func longName(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'n'
	}
	return string(b)
}

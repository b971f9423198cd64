package broker

// Error codes of compat-tests/ERRORS.md for the topic and config admin
// APIs (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
// AlterConfigs, IncrementalAlterConfigs) that kbroker once answered
// differently from Kafka 4.x, each driven by a request pinned to a version
// against an in-process broker.

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// describeTopicConfig returns a topic's value of key, or fails the test.
func describeTopicConfig(t *testing.T, cl *kgo.Client, topic, key string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(4)
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = resourceTopic, topic, []string{key}
	req.Resources = append(req.Resources, rr)
	resp := rawRequest(t, cl, req).(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 || len(resp.Resources[0].Configs) != 1 {
		t.Fatalf("describe %s of %s: %+v", key, topic, resp.Resources)
	}
	return *resp.Resources[0].Configs[0].Value
}

// alterConfigsCodes sends a pinned AlterConfigs and returns each resource's
// code in answer order.
func alterConfigsCodes(t *testing.T, cl *kgo.Client, version int16, resources ...kmsg.AlterConfigsRequestResource) []int16 {
	t.Helper()
	req := kmsg.NewPtrAlterConfigsRequest()
	req.SetVersion(version)
	req.Resources = resources
	resp := rawRequest(t, cl, req).(*kmsg.AlterConfigsResponse)
	var codes []int16
	for _, r := range resp.Resources {
		codes = append(codes, r.ErrorCode)
	}
	if len(codes) != len(resources) {
		t.Fatalf("AlterConfigs v%d: %d answers for %d resources", version, len(codes), len(resources))
	}
	return codes
}

func alterResource(topic string, kvs ...*string) kmsg.AlterConfigsRequestResource {
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = resourceTopic, topic
	for i := 0; i+1 < len(kvs); i += 2 {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name, c.Value = *kvs[i], kvs[i+1]
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

// incrementalCodes sends a pinned IncrementalAlterConfigs and returns each
// resource's code in answer order.
func incrementalCodes(t *testing.T, cl *kgo.Client, version int16, resources ...kmsg.IncrementalAlterConfigsRequestResource) []int16 {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.SetVersion(version)
	req.Resources = resources
	resp := rawRequest(t, cl, req).(*kmsg.IncrementalAlterConfigsResponse)
	var codes []int16
	for _, r := range resp.Resources {
		codes = append(codes, r.ErrorCode)
	}
	if len(codes) != len(resources) {
		t.Fatalf("IncrementalAlterConfigs v%d: %d answers for %d resources", version, len(codes), len(resources))
	}
	return codes
}

type incrementalOp struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

func incrementalResource(topic string, ops ...incrementalOp) kmsg.IncrementalAlterConfigsRequestResource {
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = resourceTopic, topic
	for _, o := range ops {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = o.name, o.op, o.value
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func wantAdminCodes(t *testing.T, what string, got []int16, want ...*kerr.Error) {
	t.Helper()
	for i := range want {
		wantErr(t, what, got[i], want[i])
	}
}

// TestConfigAPIsValidateAsKafka: AlterConfigs and IncrementalAlterConfigs
// refuse, before anything is applied, a null value, a config name given
// twice and a resource given twice (every occurrence) with INVALID_REQUEST,
// as Kafka's broker does before forwarding (ConfigAdminManager.preprocess);
// an unknown incremental operation too. Then they check in the order of
// Kafka's controller: the topic name (INVALID_TOPIC_EXCEPTION, "" is
// INVALID_REQUEST), the configs (INVALID_CONFIG even for an unknown
// topic), and last whether the topic exists. DescribeConfigs answers an
// invalid topic name INVALID_TOPIC_EXCEPTION, fails every resource of a
// request with a resource type Kafka does not know, and describes a
// client-metrics subscription with no configs.
func TestConfigAPIsValidateAsKafka(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "cfg", 1, map[string]string{"retention.ms": "1000"})
	s := kmsg.StringPtr
	const (
		set      = kmsg.IncrementalAlterConfigOpSet
		del      = kmsg.IncrementalAlterConfigOpDelete
		appendOp = kmsg.IncrementalAlterConfigOpAppend
	)

	for _, v := range []int16{0, 2} {
		// A null value: refused, not dropped (dropping would reset
		// retention.ms, as legacy AlterConfigs replaces every override).
		wantAdminCodes(t, "AlterConfigs null value", alterConfigsCodes(t, cl, v,
			alterResource("cfg", s("retention.ms"), s("2000"), s("segment.ms"), nil)), kerr.InvalidRequest)
		wantAdminCodes(t, "AlterConfigs key twice", alterConfigsCodes(t, cl, v,
			alterResource("cfg", s("retention.ms"), s("2000"), s("retention.ms"), s("3000"))), kerr.InvalidRequest)
		wantAdminCodes(t, "AlterConfigs resource twice", alterConfigsCodes(t, cl, v,
			alterResource("cfg", s("retention.ms"), s("2000")),
			alterResource("nope", s("retention.ms"), s("2000")),
			alterResource("cfg", s("retention.ms"), s("3000"))),
			kerr.InvalidRequest, kerr.UnknownTopicOrPartition, kerr.InvalidRequest)
		if got := describeTopicConfig(t, cl, "cfg", "retention.ms"); got != "1000" {
			t.Fatalf("AlterConfigs v%d: refused requests changed retention.ms to %s", v, got)
		}
		wantAdminCodes(t, "AlterConfigs order of checks", alterConfigsCodes(t, cl, v,
			alterResource("nope1", s("retention.ms"), s("bad")),
			alterResource("nope2", s("no.such.key"), s("1")),
			alterResource("bad name!", s("retention.ms"), s("bad")),
			alterResource("bad name?", s("retention.ms"), s("1")),
			alterResource("", s("retention.ms"), s("1")),
			alterResource("nope3", s("retention.ms"), s("1"))),
			kerr.InvalidConfig, kerr.InvalidConfig, kerr.InvalidTopicException, kerr.InvalidTopicException,
			kerr.InvalidRequest, kerr.UnknownTopicOrPartition)
	}

	for _, v := range []int16{0, 1} {
		wantAdminCodes(t, "IncrementalAlterConfigs null values", incrementalCodes(t, cl, v,
			incrementalResource("cfg", incrementalOp{"retention.ms", set, nil}),
			incrementalResource("cfg2", incrementalOp{"cleanup.policy", appendOp, nil})),
			kerr.InvalidRequest, kerr.InvalidRequest)
		wantAdminCodes(t, "IncrementalAlterConfigs unknown operation", incrementalCodes(t, cl, v,
			incrementalResource("cfg", incrementalOp{"retention.ms", 7, s("2000")}),
			incrementalResource("cfg2", incrementalOp{"retention.ms", -1, s("2000")})), kerr.InvalidRequest, kerr.InvalidRequest)
		wantAdminCodes(t, "IncrementalAlterConfigs key twice", incrementalCodes(t, cl, v,
			incrementalResource("cfg", incrementalOp{"retention.ms", set, s("2000")}, incrementalOp{"retention.ms", del, nil})), kerr.InvalidRequest)
		wantAdminCodes(t, "IncrementalAlterConfigs resource twice", incrementalCodes(t, cl, v,
			incrementalResource("cfg", incrementalOp{"retention.ms", set, s("2000")}),
			incrementalResource("cfg", incrementalOp{"segment.ms", set, s("3600000")})),
			kerr.InvalidRequest, kerr.InvalidRequest)
		if got := describeTopicConfig(t, cl, "cfg", "retention.ms"); got != "1000" {
			t.Fatalf("IncrementalAlterConfigs v%d: refused requests changed retention.ms to %s", v, got)
		}
		wantAdminCodes(t, "IncrementalAlterConfigs order of checks", incrementalCodes(t, cl, v,
			incrementalResource("nope1", incrementalOp{"retention.ms", set, s("bad")}),
			incrementalResource("nope2", incrementalOp{"retention.ms", appendOp, s("1")}),
			incrementalResource("bad name!", incrementalOp{"retention.ms", set, s("1")}),
			incrementalResource("", incrementalOp{"retention.ms", set, s("1")}),
			incrementalResource("nope3", incrementalOp{"retention.ms", set, s("1")}),
			incrementalResource("cfg", incrementalOp{"segment.ms", del, nil})),
			kerr.InvalidConfig, kerr.InvalidConfig, kerr.InvalidTopicException, kerr.InvalidRequest,
			kerr.UnknownTopicOrPartition, noError)
	}

	for _, v := range []int16{1, 4} {
		describe := func(resources ...kmsg.DescribeConfigsRequestResource) []kmsg.DescribeConfigsResponseResource {
			req := kmsg.NewPtrDescribeConfigsRequest()
			req.SetVersion(v)
			req.Resources = resources
			resp := rawRequest(t, cl, req).(*kmsg.DescribeConfigsResponse)
			if len(resp.Resources) != len(resources) {
				t.Fatalf("DescribeConfigs v%d: %d answers for %d resources", v, len(resp.Resources), len(resources))
			}
			return resp.Resources
		}
		res := func(typ kmsg.ConfigResourceType, name string) kmsg.DescribeConfigsRequestResource {
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = typ, name
			return rr
		}
		got := describe(res(resourceTopic, "bad name!"), res(resourceTopic, ""), res(resourceTopic, "nope"),
			res(resourceTopic, "cfg"), res(resourceClientMetrics, "some-subscription"), res(resourceClientMetrics, ""),
			res(resourceBroker, "01"), res(resourceBroker, "one"), res(resourceBroker, "2"))
		for i, want := range []*kerr.Error{kerr.InvalidTopicException, kerr.InvalidTopicException, kerr.UnknownTopicOrPartition,
			noError, noError, kerr.InvalidRequest, noError, kerr.InvalidRequest, kerr.InvalidRequest} {
			wantErr(t, "DescribeConfigs "+got[i].ResourceName, got[i].ErrorCode, want)
		}
		if len(got[4].Configs) != 0 || len(got[6].Configs) == 0 {
			t.Fatalf("DescribeConfigs v%d: client metrics configs %v, broker 01 configs %d", v, got[4].Configs, len(got[6].Configs))
		}
		// A type Kafka does not know fails every resource of the request.
		for _, r := range describe(res(resourceTopic, "cfg"), res(3, "x")) {
			wantErr(t, "DescribeConfigs with an unknown resource type", r.ErrorCode, kerr.InvalidRequest)
		}
	}
}

// registerFakeBroker registers broker id in tb's etcd (no process behind
// it), optionally in controlled shutdown, and waits until tb sees it. It
// is deregistered at cleanup, before tb stops.
func registerFakeBroker(t *testing.T, tb *testBroker, id int32, shuttingDown bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := etcd.BrokerInfo{ID: id, Endpoints: []etcd.Endpoint{{Listener: "PLAINTEXT", Host: "127.0.0.1", Port: 1, SecurityProtocol: "PLAINTEXT"}}}
	reg, err := tb.store.RegisterBroker(ctx, info, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(context.Background()) })
	rev := reg.Epoch()
	if shuttingDown {
		if rev, err = reg.SetShuttingDown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.view.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

// createTopicsCodes sends one pinned CreateTopics and returns its codes in
// answer order.
func createTopicsCodes(t *testing.T, cl *kgo.Client, topics ...kmsg.CreateTopicsRequestTopic) []int16 {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 10000
	req.Topics = topics
	resp := rawRequest(t, cl, req).(*kmsg.CreateTopicsResponse)
	if len(resp.Topics) != len(topics) {
		t.Fatalf("CreateTopics: %d answers for %d topics", len(resp.Topics), len(topics))
	}
	var codes []int16
	for _, st := range resp.Topics {
		codes = append(codes, st.ErrorCode)
	}
	return codes
}

func createTopicsEntry(name string, partitions int32, assignment ...[]int32) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	if len(assignment) > 0 {
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
	}
	for p, replicas := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	return rt
}

func createPartitionsCode(t *testing.T, cl *kgo.Client, topic string, count int32, assignment ...[]int32) int16 {
	t.Helper()
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.SetVersion(3)
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	for _, replicas := range assignment {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = replicas
		rt.Assignment = append(rt.Assignment, a)
	}
	req.Topics = append(req.Topics, rt)
	return rawRequest(t, cl, req).(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode
}

// TestCreateTopicsAndPartitionsValidateAsKafka: CreateTopics refuses a name
// colliding with an existing topic on '.' versus '_' with
// INVALID_TOPIC_EXCEPTION (two colliding new names in one request are both
// created: Kafka checks against the topics before the request), a null
// config value with INVALID_CONFIG, and answers an existing name
// TOPIC_ALREADY_EXISTS even when its assignment is malformed; a name given
// twice is INVALID_REQUEST for each occurrence. Malformed assignments
// (partitions not 0..n-1 or one listed twice, an empty list, a broker
// twice, unequal lengths, an unregistered broker) are
// INVALID_REPLICA_ASSIGNMENT, in CreatePartitions too (with a count or
// replication factor that does not fit the topic; an unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION). Both accept an assignment naming a broker in
// controlled shutdown while another replica is active (it leads), and
// refuse one whose every replica is shutting down with
// INVALID_REPLICA_ASSIGNMENT.
func TestCreateTopicsAndPartitionsValidateAsKafka(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "metrics.in", 1, nil)

	wantAdminCodes(t, "CreateTopics colliding names", createTopicsCodes(t, cl,
		createTopicsEntry("metrics_in", 1), createTopicsEntry("metrics.in", 1), createTopicsEntry("new.pair", 1), createTopicsEntry("new_pair", 1)),
		kerr.InvalidTopicException, kerr.TopicAlreadyExists, noError, noError)
	nullCfg := createTopicsEntry("null-config", 1)
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name = "retention.ms"
	nullCfg.Configs = append(nullCfg.Configs, c)
	malformed := createTopicsEntry("metrics.in", 0, []int32{1})
	malformed.ReplicaAssignment[0].Partition = 5
	wantAdminCodes(t, "CreateTopics null config, malformed assignment of an existing name", createTopicsCodes(t, cl, nullCfg, malformed),
		kerr.InvalidConfig, kerr.TopicAlreadyExists)

	registerFakeBroker(t, tb, 2, false)
	notConsecutive := createTopicsEntry("bad-assignment-1", 0, []int32{1})
	notConsecutive.ReplicaAssignment[0].Partition = 1
	listedTwice := createTopicsEntry("bad-assignment-6", 0, []int32{1}, []int32{2})
	listedTwice.ReplicaAssignment[1].Partition = 0
	wantAdminCodes(t, "CreateTopics malformed assignments", createTopicsCodes(t, cl, notConsecutive,
		createTopicsEntry("bad-assignment-2", 0, []int32{}), createTopicsEntry("bad-assignment-3", 0, []int32{1, 1}),
		createTopicsEntry("bad-assignment-4", 0, []int32{1, 2}, []int32{1}), createTopicsEntry("bad-assignment-5", 0, []int32{1, 9}),
		listedTwice),
		kerr.InvalidReplicaAssignment, kerr.InvalidReplicaAssignment, kerr.InvalidReplicaAssignment,
		kerr.InvalidReplicaAssignment, kerr.InvalidReplicaAssignment, kerr.InvalidReplicaAssignment)
	wantAdminCodes(t, "CreateTopics name twice", createTopicsCodes(t, cl, createTopicsEntry("twice", 1), createTopicsEntry("twice", 1)),
		kerr.InvalidRequest, kerr.InvalidRequest)
	wantErr(t, "CreatePartitions unknown topic", createPartitionsCode(t, cl, "nope", 2), kerr.UnknownTopicOrPartition)
	wantAdminCodes(t, "CreateTopics rf 2", createTopicsCodes(t, cl, createTopicsEntry("rf2", 0, []int32{1, 2})), noError)
	wantErr(t, "CreatePartitions broker twice", createPartitionsCode(t, cl, "rf2", 2, []int32{1, 1}), kerr.InvalidReplicaAssignment)
	wantErr(t, "CreatePartitions other replication factor", createPartitionsCode(t, cl, "rf2", 2, []int32{1}), kerr.InvalidReplicaAssignment)
	wantErr(t, "CreatePartitions unregistered broker", createPartitionsCode(t, cl, "rf2", 2, []int32{1, 9}), kerr.InvalidReplicaAssignment)
	wantErr(t, "CreatePartitions assignment count", createPartitionsCode(t, cl, "rf2", 3, []int32{1, 2}), kerr.InvalidReplicaAssignment)

	registerFakeBroker(t, tb, 3, true)
	wantAdminCodes(t, "CreateTopics with a replica in controlled shutdown", createTopicsCodes(t, cl,
		createTopicsEntry("with-stopping", 0, []int32{3, 1}), createTopicsEntry("only-stopping", 0, []int32{3})),
		noError, kerr.InvalidReplicaAssignment)
	wantErr(t, "CreatePartitions with a replica in controlled shutdown", createPartitionsCode(t, cl, "rf2", 2, []int32{3, 1}), noError)
	wantErr(t, "CreatePartitions all replicas in controlled shutdown", createPartitionsCode(t, cl, "metrics.in", 2, []int32{3}), kerr.InvalidReplicaAssignment)
	img := tb.view.Image()
	for _, tp := range []struct {
		topic string
		p     int
	}{{"with-stopping", 0}, {"rf2", 1}} {
		st := img.Topics[tp.topic].Partitions[tp.p].State
		if st.Leader != 1 || len(st.ISR) != 1 || st.ISR[0] != 1 {
			t.Errorf("%s-%d: leader %d ISR %v, want leader 1 ISR [1]", tp.topic, tp.p, st.Leader, st.ISR)
		}
	}
}

// deleteTopicsAnswers sends one pinned DeleteTopics.
func deleteTopicsAnswers(t *testing.T, cl *kgo.Client, version int16, entries ...kmsg.DeleteTopicsRequestTopic) []kmsg.DeleteTopicsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.SetVersion(version)
	req.TimeoutMillis = 10000
	if version >= 6 {
		req.Topics = entries
	} else {
		for _, e := range entries {
			req.TopicNames = append(req.TopicNames, *e.Topic)
		}
	}
	return rawRequest(t, cl, req).(*kmsg.DeleteTopicsResponse).Topics
}

func deleteTopicsEntry(name *string, id [16]byte) kmsg.DeleteTopicsRequestTopic {
	e := kmsg.NewDeleteTopicsRequestTopic()
	e.Topic, e.TopicID = name, id
	return e
}

// TestDeleteTopicsValidateAsKafka: DeleteTopics v6 answers an entry with
// both name and ID, or neither, INVALID_REQUEST; a name or ID given twice
// gets one INVALID_REQUEST answer (at every version for names); a name
// whose topic is also given by ID gets one INVALID_REQUEST answer for both.
// None of them deletes anything. With delete.topic.enable=false every
// entry answers INVALID_REQUEST at v1-v2 and TOPIC_DELETION_DISABLED from v3.
func TestDeleteTopicsValidateAsKafka(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "keep", 1, nil)
	id := tb.view.Image().Topics["keep"].ID
	s := kmsg.StringPtr
	check := func(what string, got []kmsg.DeleteTopicsResponseTopic, want int) {
		t.Helper()
		if len(got) != want {
			t.Fatalf("%s: %d answers %+v, want %d", what, len(got), got, want)
		}
		for _, st := range got {
			wantErr(t, what, st.ErrorCode, kerr.InvalidRequest)
		}
		if tb.view.Image().Topics["keep"] == nil {
			t.Fatalf("%s deleted the topic", what)
		}
	}

	got := deleteTopicsAnswers(t, cl, 6, deleteTopicsEntry(s("keep"), id), deleteTopicsEntry(nil, [16]byte{}))
	check("name and ID, neither", got, 2)
	if got[0].Topic == nil || *got[0].Topic != "keep" || got[0].TopicID != id || got[1].Topic != nil || got[1].TopicID != [16]byte{} {
		t.Fatalf("name and ID, neither: answers %+v echo the wrong entries", got)
	}
	check("name twice", deleteTopicsAnswers(t, cl, 6, deleteTopicsEntry(s("keep"), [16]byte{}), deleteTopicsEntry(s("keep"), [16]byte{})), 1)
	check("ID twice", deleteTopicsAnswers(t, cl, 6, deleteTopicsEntry(nil, id), deleteTopicsEntry(nil, id)), 1)
	got = deleteTopicsAnswers(t, cl, 6, deleteTopicsEntry(nil, id), deleteTopicsEntry(s("keep"), [16]byte{}))
	check("name and its ID", got, 1)
	if got[0].Topic == nil || *got[0].Topic != "keep" || got[0].TopicID != id {
		t.Fatalf("name and its ID: answer %+v", got[0])
	}
	for _, v := range []int16{1, 5} {
		check("name twice", deleteTopicsAnswers(t, cl, v, deleteTopicsEntry(s("keep"), [16]byte{}), deleteTopicsEntry(s("keep"), [16]byte{})), 1)
	}

	off := startBroker(t, t.TempDir(), func(c *config.Config) { c.DeleteTopicEnable = false })
	offCl := newClient(t, off.addr)
	createTopic(t, offCl, "undeletable", 1, nil)
	for _, v := range []int16{1, 2, 3, 6} {
		want := kerr.TopicDeletionDisabled
		if v < 3 {
			want = kerr.InvalidRequest
		}
		got := deleteTopicsAnswers(t, offCl, v, deleteTopicsEntry(s("undeletable"), [16]byte{}), deleteTopicsEntry(s("nope"), [16]byte{}))
		if len(got) != 2 {
			t.Fatalf("v%d with deletion disabled: %+v", v, got)
		}
		for _, st := range got {
			wantErr(t, "delete with delete.topic.enable=false", st.ErrorCode, want)
		}
	}
}

package compat

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The docker tests run the repository's compose files against the kbroker
// image exactly as a user would (`make image`, `docker-compose up`). They
// run whenever a Docker engine answers `docker info`, and skip with dkSkip
// otherwise.

var dkExternal = []string{"localhost:9092", "localhost:9093", "localhost:9094"}

// TestDockerCompose: the root docker-compose.yml forms a three-broker
// cluster; host clients use the EXTERNAL listener and containers the
// INTERNAL one, each seeing its own listener's addresses; with one broker
// stopped acks=all produce and group consumption continue (RF 3, min ISR 2)
// and the broker rejoins the ISR when started; `down` and `up` keep every
// record and committed offset in the named volumes.
func TestDockerCompose(t *testing.T) {
	requireDocker(t)
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	s := startCompose(t, "../docker-compose.yml", 9092, 9093, 9094)
	cl := dkClient(t, dkExternal)
	adm := kadm.NewClient(cl)
	dkWaitBrokers(t, adm, 2*time.Minute, dkExternal...)
	s.waitHealthy(time.Minute, "kafka1", "kafka2", "kafka3")

	const topic = "compose-events"
	ctx := testCtx(t, 3*time.Minute)
	// -1/-1: the broker defaults set by KAFKA_NUM_PARTITIONS and
	// KAFKA_DEFAULT_REPLICATION_FACTOR.
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	td := dkTopic(t, adm, topic)
	if len(td.Partitions) != 3 {
		t.Fatalf("%s has %d partitions, want 3 (KAFKA_NUM_PARTITIONS)", topic, len(td.Partitions))
	}
	for _, p := range td.Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("%s[%d] has replicas %v, want 3 (KAFKA_DEFAULT_REPLICATION_FACTOR)", topic, p.Partition, p.Replicas)
		}
	}

	t.Run("kcat from the host", func(t *testing.T) {
		out := runKcat(t, kcat, "", "-b", "localhost:9092", "-L")
		for _, want := range []string{"3 brokers:", "broker 1 at localhost:9092", "broker 2 at localhost:9093", "broker 3 at localhost:9094"} {
			if !strings.Contains(out, want) {
				t.Fatalf("kcat -L lacks %q:\n%s", want, out)
			}
		}
		values := dkValues("kcat", 0, 30)
		runKcat(t, kcat, strings.Join(values, "\n")+"\n", "-b", "localhost:9093", "-P", "-t", topic, "-X", "acks=all")
		out = runKcat(t, kcat, "", "-b", "localhost:9094", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-c", "30")
		dkSameSet(t, "kcat consumed", strings.Fields(out), values)
	})

	t.Run("client on the compose network", func(t *testing.T) {
		out := s.runApp("brokers", "-bootstrap", "kafka1:29092")
		for _, want := range []string{"broker 1 kafka1:29092", "broker 2 kafka2:29092", "broker 3 kafka3:29092"} {
			if !strings.Contains(out, want) {
				t.Fatalf("internal Metadata lacks %q:\n%s", want, out)
			}
		}
		s.runApp("produce", "-bootstrap", "kafka2:29092", "-topic", "compose-internal", "-count", "10", "-interval", "0")
		out = s.runApp("consume", "-bootstrap", "kafka3:29092", "-topic", "compose-internal", "-group", "internal-app", "-count", "10")
		if n := strings.Count(out, "consumed "); n != 10 {
			t.Fatalf("internal consumer printed %d records, want 10:\n%s", n, out)
		}
	})

	const group = "compose-group"
	groupClient := func() *kgo.Client {
		return dkClient(t, dkExternal[:2], kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	}
	consumeAndCommit := func(n int) []string {
		t.Helper()
		c := groupClient()
		got := dkConsume(t, c, time.Minute, n)
		if err := c.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		c.Close()
		return got
	}
	dkSameSet(t, "group before failover", consumeAndCommit(30), dkValues("kcat", 0, 30))

	t.Run("one broker stopped", func(t *testing.T) {
		s.must("stop", "-t", "10", "kafka3")
		p := dkClient(t, dkExternal[:2], kgo.RequiredAcks(kgo.AllISRAcks()))
		values := dkValues("failover", 0, 20)
		dkProduce(t, p, 90*time.Second, topic, values...)
		dkSameSet(t, "group during failover", consumeAndCommit(20), values)

		s.must("start", "kafka3")
		dkPoll(t, 90*time.Second, "kafka3 back in every ISR", func() error {
			td := dkTopic(t, adm, topic)
			for _, p := range td.Partitions {
				if len(p.ISR) != 3 {
					return fmt.Errorf("%s[%d] ISR %v", topic, p.Partition, p.ISR)
				}
			}
			return nil
		})
	})

	t.Run("down and up keep the volumes", func(t *testing.T) {
		s.must("down", "-t", "10")
		s.must("up", "-d")
		dkWaitBrokers(t, adm, 2*time.Minute, dkExternal...)
		all := append(dkValues("kcat", 0, 30), dkValues("failover", 0, 20)...)
		c := dkClient(t, dkExternal, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		dkSameSet(t, "records after down/up", dkConsume(t, c, time.Minute, len(all)), all)
		var committed int64
		dkPoll(t, time.Minute, "committed offsets readable", func() error {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			offs, err := adm.FetchOffsets(fctx, group)
			if err != nil {
				return err
			}
			committed = 0
			offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
			return nil
		})
		if committed != int64(len(all)) {
			t.Fatalf("group %s committed %d records in total after down/up, want %d", group, committed, len(all))
		}
	})
}

// dkTopic returns a topic's metadata, failing on any error.
func dkTopic(t *testing.T, adm *kadm.Client, topic string) kadm.TopicDetail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("metadata %s: %v", topic, err)
	}
	td, ok := m.Topics[topic]
	if !ok || td.Err != nil {
		t.Fatalf("metadata %s: %v", topic, td.Err)
	}
	return td
}

// TestDockerExampleApp: examples/app's stack (an apache/kafka-style KRaft
// broker, a producer and a consumer service) comes up and the consumer
// prints what the producer sends.
func TestDockerExampleApp(t *testing.T) {
	requireDocker(t)
	s := startCompose(t, "../examples/app/docker-compose.yml", 9092)
	s.waitHealthy(time.Minute, "kafka")
	dkPoll(t, 90*time.Second, "consumer received the first records", func() error {
		out, err := s.compose("logs", "--no-color", "consumer")
		if err != nil {
			return err
		}
		for i := range 5 {
			if want := fmt.Sprintf("consumed %d message-%d", i, i); !strings.Contains(out, want) {
				return fmt.Errorf("consumer has not printed %q yet", want)
			}
		}
		return nil
	})
}

// TestDockerSingle: examples/single, a bitnami-style one-broker stack with
// its volume on /bitnami/kafka, serves host clients.
func TestDockerSingle(t *testing.T) {
	requireDocker(t)
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	s := startCompose(t, "../examples/single/docker-compose.yml", 9092)
	s.waitHealthy(time.Minute, "kafka")
	out := runKcat(t, kcat, "", "-b", "localhost:9092", "-L")
	if !strings.Contains(out, "1 brokers:") || !strings.Contains(out, "at localhost:9092") {
		t.Fatalf("kcat -L:\n%s", out)
	}
	values := dkValues("single", 0, 5)
	runKcat(t, kcat, strings.Join(values, "\n")+"\n", "-b", "localhost:9092", "-P", "-t", "dev", "-X", "acks=all")
	out = runKcat(t, kcat, "", "-b", "localhost:9092", "-C", "-t", "dev", "-o", "beginning", "-e", "-q", "-c", "5")
	dkSameSet(t, "kcat consumed", strings.Fields(out), values)
	logs := s.must("logs", "--no-color", "kafka")
	if !strings.Contains(logs, "using /bitnami/kafka/data") {
		t.Fatalf("broker did not pick the bitnami volume:\n%s", logs)
	}
}

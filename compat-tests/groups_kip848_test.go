package compat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupConsumerProtocol drives the KIP-848 consumer group protocol
// (ConsumerGroupHeartbeat, server-side assignment) with franz-go's
// ServerSideBalancer: three members share a topic under a steady producer,
// a fourth joins, one leaves; no partition is ever owned by two members,
// nothing is lost or read twice, offsets are committed, and
// ConsumerGroupDescribe shows the members.
func TestGroupConsumerProtocol(t *testing.T) {
	b := startGroupBroker(t)
	adm := newAdmin(t, b)
	topic, group := "kip848", "group-kip848"
	createTopic(t, adm, topic, groupTopicPartitions, nil)
	tr := newTracker(topic, groupTopicPartitions)
	server := kgo.ServerSideBalancer()
	prod := startProducer(t, b, topic, groupTopicPartitions, 4*time.Millisecond)

	m1 := startMember(t, b, tr, "m1", group, server)
	m2 := startMember(t, b, tr, "m2", group, server)
	m3 := startMember(t, b, tr, "m3", group, server)
	waitConsumed(t, tr, prod, "three members")
	m4 := startMember(t, b, tr, "m4", group, server)
	waitFor(t, 30*time.Second, "the fourth member gets partitions", func() error {
		if n := len(tr.partitionsOf("m4")); n == 0 {
			return fmt.Errorf("m4 owns nothing yet: %v", tr.owners())
		}
		return nil
	})
	waitConsumed(t, tr, prod, "after the fourth member joined")
	m2.close()
	waitConsumed(t, tr, prod, "after m2 left")

	end := prod.halt(t)
	waitFor(t, 30*time.Second, "every produced record consumed", func() error {
		if err := groupProblems(tr); err != nil {
			return err
		}
		return tr.consumedThrough(end)
	})
	for _, m := range []*groupMember{m1, m3, m4} {
		m.commit(t)
	}
	tr.check(t)
	tr.checkNoOverlap(t)
	tr.checkExactlyOnce(t, end, nil)
	if got := fetchCommitted(t, adm, group, topic, groupTopicPartitions); !mapsEqual(got, end) {
		t.Fatalf("committed offsets %v, want the end offsets %v", got, end)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	described, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	d := described[group]
	if d.Err != nil || len(d.Members) != 3 {
		t.Fatalf("ConsumerGroupDescribe: err %v, %d members (want 3): %+v", d.Err, len(d.Members), d)
	}
}

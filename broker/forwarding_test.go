package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// TestAdminForwardedToController (KIP-590): admin requests sent to a broker
// that is not the controller are forwarded to it and answered with its
// result, as a Kafka 4.x broker does, instead of NOT_CONTROLLER.
func TestAdminForwardedToController(t *testing.T) {
	c := startCluster(t, 3)
	var controller int32 = -1
	waitUntil(t, 10*time.Second, "every broker sees the controller", func() bool {
		controller = c.brokers[0].view.Image().ControllerID
		for _, b := range c.brokers {
			if b.view.Image().ControllerID != controller {
				return false
			}
		}
		return controller > 0
	})
	other := controller%3 + 1
	cl := newClient(t, c.brokers[other-1].listeners[0].Addr().String())

	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(7)
	create.TimeoutMillis = 10000
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "fwd", 1, 3
	create.Topics = append(create.Topics, ct)
	if got := rawRequest(t, cl, create).(*kmsg.CreateTopicsResponse).Topics[0]; got.ErrorCode != 0 {
		t.Fatalf("CreateTopics to broker %d (controller %d): error %d", other, controller, got.ErrorCode)
	}
	waitUntil(t, 10*time.Second, "broker sees the forwarded topic", func() bool {
		return c.brokers[other-1].view.Image().Topics["fwd"] != nil
	})

	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.SetVersion(3)
	grow.TimeoutMillis = 10000
	gt := kmsg.NewCreatePartitionsRequestTopic()
	gt.Topic, gt.Count = "fwd", 2
	grow.Topics = append(grow.Topics, gt)
	if got := rawRequest(t, cl, grow).(*kmsg.CreatePartitionsResponse).Topics[0]; got.ErrorCode != 0 {
		t.Fatalf("CreatePartitions to broker %d: error %d", other, got.ErrorCode)
	}

	elect := kmsg.NewPtrElectLeadersRequest()
	elect.SetVersion(2)
	elect.TimeoutMillis = 10000
	et := kmsg.NewElectLeadersRequestTopic()
	et.Topic, et.Partitions = "fwd", []int32{0}
	elect.Topics = append(elect.Topics, et)
	er := rawRequest(t, cl, elect).(*kmsg.ElectLeadersResponse)
	if er.ErrorCode != 0 || len(er.Topics) != 1 {
		t.Fatalf("ElectLeaders to broker %d: error %d, %d topics", other, er.ErrorCode, len(er.Topics))
	}
	if code := er.Topics[0].Partitions[0].ErrorCode; code != 0 && code != kerr.ElectionNotNeeded.Code {
		t.Fatalf("ElectLeaders to broker %d: partition error %d", other, code)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.SetVersion(5)
	del.TimeoutMillis = 10000
	del.TopicNames = []string{"fwd"}
	if got := rawRequest(t, cl, del).(*kmsg.DeleteTopicsResponse).Topics[0]; got.ErrorCode != 0 {
		t.Fatalf("DeleteTopics to broker %d: error %d", other, got.ErrorCode)
	}
}

// TestOffsetForLeaderEpochServed: OffsetForLeaderEpoch (KIP-320) is
// advertised and answers a consumer's check: the largest epoch at or below
// the asked one with its end offset (the log end for the current epoch),
// undefined for an epoch above every known one,
// UNKNOWN_LEADER_EPOCH for a current epoch the broker has not reached.
func TestOffsetForLeaderEpochServed(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "ofle", 1, nil)
	if got := produceRaw(t, cl, 9, "ofle", 0, makeBatch(-1, -1, -1, 5, time.Now().UnixMilli())); got.ErrorCode != 0 {
		t.Fatalf("produce: %d", got.ErrorCode)
	}
	ask := func(current, epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.SetVersion(4)
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "ofle"
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = current, epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rawRequest(t, cl, req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	if got := ask(0, 0); got.ErrorCode != 0 || got.LeaderEpoch != 0 || got.EndOffset != 5 {
		t.Errorf("epoch 0: error %d, epoch %d, end %d; want 0, 0, 5", got.ErrorCode, got.LeaderEpoch, got.EndOffset)
	}
	// An epoch above every known one is undefined, as Kafka's
	// LeaderEpochFileCache.endOffsetFor answers.
	if got := ask(-1, 7); got.ErrorCode != 0 || got.LeaderEpoch != -1 || got.EndOffset != -1 {
		t.Errorf("epoch 7: error %d, epoch %d, end %d; want -1, -1", got.ErrorCode, got.LeaderEpoch, got.EndOffset)
	}
	if got := ask(3, 0); got.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("current epoch 3 on a broker at epoch 0: error %d, want UNKNOWN_LEADER_EPOCH", got.ErrorCode)
	}
	versions, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	advertised := map[int16]bool{}
	for _, k := range versions.ApiKeys {
		advertised[k.ApiKey] = true
	}
	for _, key := range []kmsg.Key{kmsg.OffsetForLeaderEpoch, kmsg.ElectLeaders} {
		if !advertised[int16(key)] {
			t.Errorf("%s is not advertised", kmsg.NameForKey(int16(key)))
		}
	}
}

// TestAutoCreateForwarded: a Metadata request that may create topics, sent
// to a broker that is not the controller, has the controller create the
// topic (as Kafka 4.x forwards auto-creation) with the receiving broker's
// num.partitions and default.replication.factor.
func TestAutoCreateForwarded(t *testing.T) {
	c := startCluster(t, 3, func(cfg *config.Config) {
		cfg.AutoCreateTopicsEnable = true
		cfg.NumPartitions = 2
		cfg.DefaultReplicationFactor = 3
	})
	controller := c.brokers[0].view.Image().ControllerID
	other := controller%3 + 1
	cl := newClient(t, c.brokers[other-1].listeners[0].Addr().String())
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("auto-fwd")
	req.Topics = append(req.Topics, rt)
	rawRequest(t, cl, req)
	waitUntil(t, 10*time.Second, "the auto-created topic exists", func() bool {
		return c.brokers[other-1].view.Image().Topics["auto-fwd"] != nil
	})
	topic := c.brokers[other-1].view.Image().Topics["auto-fwd"]
	if len(topic.Partitions) != 2 || len(topic.Partitions[0].Replicas) != 3 {
		t.Fatalf("auto-created via broker %d (controller %d): %d partitions of %d replicas, want 2 of 3", other, controller, len(topic.Partitions), len(topic.Partitions[0].Replicas))
	}
}

package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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

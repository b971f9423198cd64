package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
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

// TestForwardingOutlastsControllerFailure: while the controller is down and
// not yet replaced (killed: its election key lives until its lease ends, so
// the image names an unreachable controller), a broker keeps forwarding
// admin requests as Kafka 4.x's forwarding channel does, answers
// REQUEST_TIMED_OUT on every entry at the request's timeout_ms (not
// NOT_CONTROLLER at once), and serves a request whose timeout outlasts the
// failover.
func TestForwardingOutlastsControllerFailure(t *testing.T) {
	c := startCluster(t, 3, func(cfg *config.Config) { cfg.BrokerSessionTimeoutMs = 6000 })
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
	var survivors []int32
	for id := int32(1); id <= 3; id++ {
		if id != controller {
			survivors = append(survivors, id)
		}
	}
	addr := func(id int32) string { return c.brokers[id-1].listeners[0].Addr().String() }
	c.kill(int(controller - 1))

	const timeoutMillis = 1500
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(7)
	create.TimeoutMillis = timeoutMillis
	for _, name := range []string{"a", "b"} {
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = name, 1, 2
		create.Topics = append(create.Topics, ct)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.SetVersion(6)
	del.TimeoutMillis = timeoutMillis
	byName, byID := kmsg.NewDeleteTopicsRequestTopic(), kmsg.NewDeleteTopicsRequestTopic()
	byName.Topic, byID.TopicID = kmsg.StringPtr("a"), [16]byte{1, 2, 3}
	del.Topics = append(del.Topics, byName, byID)
	grow := kmsg.NewPtrCreatePartitionsRequest()
	grow.SetVersion(3)
	grow.TimeoutMillis = timeoutMillis
	gt := kmsg.NewCreatePartitionsRequestTopic()
	gt.Topic, gt.Count = "a", 2
	grow.Topics = append(grow.Topics, gt)
	elect := kmsg.NewPtrElectLeadersRequest()
	elect.SetVersion(2)
	elect.TimeoutMillis = timeoutMillis
	et := kmsg.NewElectLeadersRequestTopic()
	et.Topic, et.Partitions = "a", []int32{0, 1}
	elect.Topics = append(elect.Topics, et)

	// The four requests run at once against one survivor, each on its own
	// connection.
	reqs := []kmsg.Request{create, del, grow, elect}
	type answer struct {
		resp kmsg.Response
		took time.Duration
		err  error
	}
	answers := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := sendRaw(addr(survivors[0]), req, 15*time.Second)
			answers[i] = answer{resp, time.Since(start), err}
		}()
	}
	wg.Wait()
	if id := c.brokers[survivors[0]-1].view.Image().ControllerID; id != controller {
		t.Fatalf("controller %d replaced by %d before the timed-out requests were answered; the test needs a longer session timeout", controller, id)
	}
	timedOut := kerr.RequestTimedOut.Code
	for i, a := range answers {
		name := kmsg.NameForKey(reqs[i].Key())
		if a.err != nil {
			t.Fatalf("%s: %v", name, a.err)
		}
		if a.took < timeoutMillis*time.Millisecond-100*time.Millisecond || a.took > 5*time.Second {
			t.Errorf("%s answered after %v, want about %d ms", name, a.took, timeoutMillis)
		}
	}
	cr := answers[0].resp.(*kmsg.CreateTopicsResponse)
	if len(cr.Topics) != 2 {
		t.Fatalf("CreateTopics: %d topics, want 2", len(cr.Topics))
	}
	for _, st := range cr.Topics {
		if st.ErrorCode != timedOut || st.ErrorMessage != nil || st.NumPartitions != -1 {
			t.Errorf("CreateTopics %s: error %d, message %v, %d partitions; want REQUEST_TIMED_OUT, none, -1", st.Topic, st.ErrorCode, st.ErrorMessage, st.NumPartitions)
		}
	}
	dr := answers[1].resp.(*kmsg.DeleteTopicsResponse)
	if len(dr.Topics) != 2 || dr.Topics[0].Topic == nil || *dr.Topics[0].Topic != "a" || dr.Topics[1].Topic != nil || dr.Topics[1].TopicID != byID.TopicID {
		t.Fatalf("DeleteTopics: entries not echoed as given: %+v", dr.Topics)
	}
	for _, st := range dr.Topics {
		if st.ErrorCode != timedOut {
			t.Errorf("DeleteTopics: error %d, want REQUEST_TIMED_OUT", st.ErrorCode)
		}
	}
	if pr := answers[2].resp.(*kmsg.CreatePartitionsResponse); len(pr.Topics) != 1 || pr.Topics[0].ErrorCode != timedOut {
		t.Errorf("CreatePartitions: %+v, want REQUEST_TIMED_OUT for a", pr.Topics)
	}
	er := answers[3].resp.(*kmsg.ElectLeadersResponse)
	if er.ErrorCode != timedOut || len(er.Topics) != 1 || len(er.Topics[0].Partitions) != 2 {
		t.Fatalf("ElectLeaders: error %d, topics %+v; want REQUEST_TIMED_OUT for the response and both partitions", er.ErrorCode, er.Topics)
	}
	for _, rp := range er.Topics[0].Partitions {
		if rp.ErrorCode != timedOut {
			t.Errorf("ElectLeaders a-%d: error %d, want REQUEST_TIMED_OUT", rp.Partition, rp.ErrorCode)
		}
	}

	// A request whose timeout outlasts the dead controller's lease is
	// served once a new controller is elected. Sent to both survivors: the
	// one that does not become the controller forwards it to the one that
	// does, which serves its own directly.
	long := make([]answer, len(survivors))
	for i, id := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrCreateTopicsRequest()
			req.SetVersion(7)
			req.TimeoutMillis = 30000
			ct := kmsg.NewCreateTopicsRequestTopic()
			ct.Topic, ct.NumPartitions, ct.ReplicationFactor = fmt.Sprintf("after-%d", id), 1, 2
			req.Topics = append(req.Topics, ct)
			start := time.Now()
			resp, err := sendRaw(addr(id), req, 40*time.Second)
			long[i] = answer{resp, time.Since(start), err}
		}()
	}
	wg.Wait()
	next := c.brokers[survivors[0]-1].view.Image().ControllerID
	if next == controller || next < 0 {
		t.Fatalf("controller after failover: %d (was %d)", next, controller)
	}
	for i, a := range long {
		if a.err != nil {
			t.Fatalf("CreateTopics to broker %d: %v", survivors[i], a.err)
		}
		if st := a.resp.(*kmsg.CreateTopicsResponse).Topics[0]; st.ErrorCode != 0 {
			t.Errorf("CreateTopics to broker %d during failover (new controller %d): error %d after %v", survivors[i], next, st.ErrorCode, a.took)
		}
	}
}

// sendRaw sends req at its version on a connection of its own and returns
// the answer, failing after timeout; unlike rawRequest it may run on any
// goroutine.
func sendRaw(addr string, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	return roundTrip(nc, "raw-test", req, 64<<20)
}

package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFindCoordinatorOnEveryBroker: in a fresh cluster, FindCoordinator
// for a group and for a transactional ID sent to each broker — the
// controller or not — finds a coordinator: the broker that does not
// control the cluster has the controller create the internal topic
// (forwarded, as Kafka's auto-creation is) instead of failing with
// NOT_CONTROLLER again and again.
func TestFindCoordinatorOnEveryBroker(t *testing.T) {
	c := startCluster(t, 3)
	// The brokers that are not the controller go first, so they are the
	// ones that must get the internal topics created.
	order := make([]*Broker, 0, len(c.brokers))
	for _, b := range c.brokers {
		if b.controller.Load() == nil {
			order = append(order, b)
		}
	}
	for _, b := range c.brokers {
		if b.controller.Load() != nil {
			order = append(order, b)
		}
	}
	for _, b := range order {
		cl := newClient(t, b.listeners[0].Addr().String())
		for _, kind := range []int8{0, 1} { // group, transaction
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.CoordinatorType = kind
			req.CoordinatorKeys = []string{"fc-key"}
			waitUntil(t, 15*time.Second, "FindCoordinator finds a coordinator", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := req.RequestWith(ctx, cl)
				if err != nil || len(resp.Coordinators) != 1 {
					return false
				}
				return resp.Coordinators[0].ErrorCode == 0 && resp.Coordinators[0].NodeID > 0
			})
			t.Logf("node %d (controller: %v): coordinator type %d found", b.nodeID, b.controller.Load() != nil, kind)
		}
	}
}

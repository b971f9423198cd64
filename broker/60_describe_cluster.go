package broker

// DescribeCluster: v0-2
//
// Behavior:
// * Lists the registered brokers with the endpoints of the listener the
//   client connected through, the cluster ID and the controller.
// * Endpoint type 2 (controllers) is refused: kbroker has no separate
//   controller endpoints (UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker).
//
// Version notes:
// * v1: endpoint type; v2: include fenced brokers (none are fenced here).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeCluster(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeClusterRequest)
	resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = r.EndpointType
	if r.Version >= 1 && r.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("kbroker brokers only serve the brokers endpoint type (1).")
		return now(resp), nil
	}
	img := c.b.view.Image()
	resp.ClusterID = img.ClusterID
	resp.ControllerID = img.ControllerID
	resp.ClusterAuthorizedOperations = authorizedOperationsOmitted
	for _, id := range registeredBrokerIDs(img) {
		info := img.Brokers[id]
		ep, ok := c.b.advertisedEndpoint(info, c.listener)
		if !ok {
			continue
		}
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = id, ep.Host, ep.Port
		if info.Rack != "" {
			b.Rack = kmsg.StringPtr(info.Rack)
		}
		resp.Brokers = append(resp.Brokers, b)
	}
	return now(resp), nil
}

package broker

// AlterConfigs: v0-2
//
// Behavior:
// * Replaces a topic's overrides with exactly the given set (keys not
//   listed return to their defaults), as Kafka's legacy AlterConfigs does.
// * Broker configs are static in kbroker for now: INVALID_REQUEST says so.
// * A resource given twice, a config name given twice and a null value are
//   INVALID_REQUEST (checkConfigResource); then the topic name, the configs
//   and last whether the topic exists are checked, in Kafka's order
//   (alterTopicConfigs).
//
// Version notes:
// * v2: flexible.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleAlterConfigs(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.AlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.AlterConfigsResponse)
	repeated := repeatedNames(r.Resources, func(rr kmsg.AlterConfigsRequestResource) string {
		return configResourceKey(int8(rr.ResourceType), rr.ResourceName)
	})
	for _, rr := range r.Resources {
		out := kmsg.NewAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		var names, nulls []string
		for _, kv := range rr.Configs {
			names = append(names, kv.Name)
			if kv.Value == nil {
				nulls = append(nulls, kv.Name)
			}
		}
		terr := checkConfigResource(repeated[configResourceKey(int8(rr.ResourceType), rr.ResourceName)], names, nulls)
		if terr == nil {
			terr = c.b.alterTopicConfigs(int8(rr.ResourceType), rr.ResourceName, r.ValidateOnly, func(cur map[string]string) error {
				clear(cur)
				for _, kv := range rr.Configs {
					cur[kv.Name] = *kv.Value
				}
				return nil
			})
		}
		if terr != nil {
			out.ErrorCode, out.ErrorMessage = terr.err.Code, kmsg.StringPtr(terr.msg)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return now(resp), nil
}

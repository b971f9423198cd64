package broker

// IncrementalAlterConfigs: v0-1
//
// Behavior:
// * Topic configs: SET, DELETE, APPEND and SUBTRACT (list keys such as
//   cleanup.policy) are applied to the topic's overrides, validated
//   (INVALID_CONFIG) and stored in etcd with a compare-and-swap on the topic
//   key; validate_only changes nothing.
// * Broker configs are static in kbroker for now: INVALID_REQUEST says so.
// * Checked first, as Kafka's broker does (checkConfigResource): a resource
//   given twice, a config name given twice, a null value for SET, APPEND or
//   SUBTRACT, and an unknown operation are INVALID_REQUEST. Then, as its
//   controller does: APPEND/SUBTRACT on a non-list key (INVALID_CONFIG),
//   the topic name (INVALID_TOPIC_EXCEPTION), the configs (INVALID_CONFIG)
//   and last whether the topic exists.
//
// Version notes:
// * v1: flexible.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

func handleIncrementalAlterConfigs(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.IncrementalAlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	repeated := repeatedNames(r.Resources, func(rr kmsg.IncrementalAlterConfigsRequestResource) string {
		return configResourceKey(int8(rr.ResourceType), rr.ResourceName)
	})
	for _, rr := range r.Resources {
		out := kmsg.NewIncrementalAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		var names, nulls []string
		var unknownOp *kmsg.IncrementalAlterConfigOp
		for _, op := range rr.Configs {
			names = append(names, op.Name)
			if op.Op != kmsg.IncrementalAlterConfigOpDelete && op.Value == nil {
				nulls = append(nulls, op.Name)
			}
			if unknownOp == nil && (op.Op < kmsg.IncrementalAlterConfigOpSet || op.Op > kmsg.IncrementalAlterConfigOpSubtract) {
				unknownOp = &op.Op
			}
		}
		terr := checkConfigResource(repeated[configResourceKey(int8(rr.ResourceType), rr.ResourceName)], names, nulls)
		if terr == nil && unknownOp != nil {
			// Kafka's broker refuses this for a BROKER resource; for a
			// topic its controller fails on it with an internal error.
			terr = topicErr(kerr.InvalidRequest, "Unknown operations type %d", *unknownOp)
		}
		if terr == nil {
			terr = c.b.alterTopicConfigs(int8(rr.ResourceType), rr.ResourceName, r.ValidateOnly, func(cur map[string]string) error {
				for _, op := range rr.Configs {
					if err := applyConfigOp(cur, op.Name, op.Op, op.Value); err != nil {
						return err
					}
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

// configResourceKey identifies a resource of AlterConfigs and
// IncrementalAlterConfigs, which a request may name only once.
func configResourceKey(resourceType int8, name string) string {
	return strconv.Itoa(int(resourceType)) + "/" + name
}

// checkConfigResource makes the checks Kafka's broker makes on a resource of
// AlterConfigs and IncrementalAlterConfigs before it forwards the rest to
// the controller (ConfigAdminManager.preprocess), in its order: the
// resource given more than once in the request (every occurrence fails), a
// config name given twice, a null value (other than for DELETE). All three
// are INVALID_REQUEST.
func checkConfigResource(repeated bool, names, nulls []string) *topicError {
	if repeated {
		return topicErr(kerr.InvalidRequest, "Each resource must appear at most once.")
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return topicErr(kerr.InvalidRequest, "Error due to duplicate config keys")
		}
		seen[n] = true
	}
	if len(nulls) > 0 {
		return topicErr(kerr.InvalidRequest, "Null value not supported for : %s", strings.Join(nulls, ", "))
	}
	return nil
}

// applyConfigOp applies one incremental operation to a topic's overrides.
func applyConfigOp(cur map[string]string, name string, op kmsg.IncrementalAlterConfigOp, value *string) error {
	switch op {
	case kmsg.IncrementalAlterConfigOpSet:
		if value == nil {
			return fmt.Errorf("null value for %s", name)
		}
		cur[name] = *value
	case kmsg.IncrementalAlterConfigOpDelete:
		delete(cur, name)
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		if name != "cleanup.policy" && !strings.HasSuffix(name, ".replicas") {
			return fmt.Errorf("config %s is not a list; APPEND and SUBTRACT apply to list configs only", name)
		}
		if value == nil {
			return fmt.Errorf("null value for %s", name)
		}
		var items []string
		if v, ok := cur[name]; ok && v != "" {
			items = strings.Split(v, ",")
		}
		for _, it := range strings.Split(*value, ",") {
			if op == kmsg.IncrementalAlterConfigOpAppend && !slices.Contains(items, it) {
				items = append(items, it)
			}
			if op == kmsg.IncrementalAlterConfigOpSubtract {
				items = slices.DeleteFunc(items, func(s string) bool { return s == it })
			}
		}
		cur[name] = strings.Join(items, ",")
	default:
		return fmt.Errorf("unknown operation %d", op)
	}
	return nil
}

// alterTopicConfigs reads a topic's overrides, lets change edit a copy,
// validates the result and stores it, retrying on a concurrent change.
func (b *Broker) alterTopicConfigs(resourceType int8, name string, validateOnly bool, change func(map[string]string) error) *topicError {
	if resourceType == resourceBroker {
		return topicErr(kerr.InvalidRequest, "kbroker has no dynamic broker configs yet; set broker keys in server.properties or with --override and restart.")
	}
	if resourceType != resourceTopic {
		return topicErr(kerr.InvalidRequest, "Unsupported resource type %d.", resourceType)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		// Kafka's controller order: apply the operations, check the name,
		// validate the resulting configs, and only then check that the
		// topic exists (an invalid config on an unknown topic is
		// INVALID_CONFIG).
		t := b.view.Image().Topics[name]
		next := map[string]string{}
		if t != nil {
			maps.Copy(next, t.Configs)
		}
		if err := change(next); err != nil {
			return topicErr(kerr.InvalidConfig, "%v", err)
		}
		if name == "" {
			return topicErr(kerr.InvalidRequest, "Default topic resources are not allowed.")
		}
		if err := validateTopicName(name); err != nil {
			return topicErr(kerr.InvalidTopicException, "%v", err)
		}
		for k, v := range next {
			if err := config.ValidateTopicConfig(k, v); err != nil {
				return topicErr(kerr.InvalidConfig, "%v", err)
			}
		}
		if _, err := config.ResolveTopicConfig(b.cfg, next); err != nil {
			return topicErr(kerr.InvalidConfig, "%v", err)
		}
		if t == nil {
			return topicErr(kerr.UnknownTopicOrPartition, "The topic '%s' does not exist.", name)
		}
		if validateOnly {
			return nil
		}
		rev, err := b.store.SetTopicConfigs(ctx, name, t.ModRevision, next)
		switch {
		case errors.Is(err, etcd.ErrConflict) && attempt < 5:
			if werr := b.view.WaitForRevision(ctx, b.view.Image().Revision+1); werr != nil && ctx.Err() != nil {
				return topicErr(kerr.RequestTimedOut, "%v", werr)
			}
			continue
		case errors.Is(err, etcd.ErrUnknownTopic):
			return topicErr(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", name)
		case err != nil:
			b.logger.Error("store topic configs", "topic", name, "err", err)
			return topicErr(kerr.UnknownServerError, "could not store the configs: %v", err)
		}
		if err := b.view.WaitForRevision(ctx, rev); err != nil {
			return topicErr(kerr.RequestTimedOut, "%v", err)
		}
		b.logger.Info("altered topic configs", "topic", name)
		return nil
	}
}

package broker

// DescribeConfigs: v1-4
//
// Behavior:
// * Topics: every topic-level key, with the topic's override
//   (DYNAMIC_TOPIC_CONFIG) or the broker value it falls back to
//   (STATIC_BROKER_CONFIG when set in the file or an override,
//   DEFAULT_CONFIG otherwise); synonyms list the chain when asked.
// * Brokers: every broker key this broker implements, read-only (kbroker has
//   no dynamic broker configs yet).
// * A null config-name list means all keys.
// * CLIENT_METRICS: kbroker has no subscriptions, so a named one is described
//   with no configs (Kafka's answer for an unknown one); BROKER_LOGGER and
//   GROUP are refused with INVALID_REQUEST.
// * An invalid topic name is INVALID_TOPIC_EXCEPTION; a resource type Kafka
//   does not know fails the whole request, every resource INVALID_REQUEST.
//
// Version notes:
// * v1: synonyms, config source; v3: config type and documentation; v4: flexible.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// Kafka's config sources.
const (
	sourceDynamicTopic  = 1
	sourceStaticBroker  = 4
	sourceDefaultConfig = 5
)

// Resource types.
const (
	resourceTopic         = 2
	resourceBroker        = 4
	resourceBrokerLogger  = 8
	resourceClientMetrics = 16
	resourceGroup         = 32
)

// knownResourceType reports whether t is a config resource type Kafka knows
// (ConfigResource.Type), whether or not kbroker serves it.
func knownResourceType(t kmsg.ConfigResourceType) bool {
	switch t {
	case resourceTopic, resourceBroker, resourceBrokerLogger, resourceClientMetrics, resourceGroup:
		return true
	}
	return false
}

func handleDescribeConfigs(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeConfigsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range r.Resources {
		if !knownResourceType(rr.ResourceType) {
			// Kafka's handler throws for the whole request: every
			// resource answers INVALID_REQUEST.
			for _, res := range r.Resources {
				out := kmsg.NewDescribeConfigsResponseResource()
				out.ResourceType, out.ResourceName = res.ResourceType, res.ResourceName
				out.ErrorCode, out.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(kerr.InvalidRequest.Description)
				resp.Resources = append(resp.Resources, out)
			}
			return now(resp), nil
		}
	}
	img := c.b.view.Image()
	for _, rr := range r.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		wanted := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch rr.ResourceType {
		case resourceTopic:
			if err := validateTopicName(rr.ResourceName); err != nil {
				out.ErrorCode = kerr.InvalidTopicException.Code
				out.ErrorMessage = kmsg.StringPtr(err.Error())
				break
			}
			t := img.Topics[rr.ResourceName]
			if t == nil {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.ErrorMessage = kmsg.StringPtr("Topic '" + rr.ResourceName + "' does not exist.")
				break
			}
			out.Configs = describeTopic(c.b.cfg, t.Configs, wanted, r.IncludeSynonyms, r.IncludeDocumentation)
		case resourceBroker:
			if rr.ResourceName != "" {
				id, err := strconv.ParseInt(rr.ResourceName, 10, 32)
				if err != nil {
					out.ErrorCode = kerr.InvalidRequest.Code
					out.ErrorMessage = kmsg.StringPtr("Broker id must be an integer, but it is: " + rr.ResourceName)
					break
				}
				if int32(id) != c.b.nodeID {
					out.ErrorCode = kerr.InvalidRequest.Code
					out.ErrorMessage = kmsg.StringPtr("Broker " + rr.ResourceName + " does not match this broker's id; send the request to that broker.")
					break
				}
			}
			for _, e := range c.b.cfg.Describe() {
				if !wanted(e.Name) {
					continue
				}
				rc := kmsg.NewDescribeConfigsResponseResourceConfig()
				rc.Name, rc.Value, rc.ReadOnly = e.Name, e.Value, true
				rc.Source = sourceDefaultConfig
				if !e.IsDefault {
					rc.Source = sourceStaticBroker
				}
				rc.ConfigType = e.Type
				if r.IncludeDocumentation {
					rc.Documentation = kmsg.StringPtr(e.Doc)
				}
				if r.IncludeSynonyms {
					s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					s.Name, s.Value, s.Source = e.Name, e.Value, rc.Source
					rc.ConfigSynonyms = append(rc.ConfigSynonyms, s)
				}
				out.Configs = append(out.Configs, rc)
			}
		case resourceClientMetrics:
			// kbroker has no client metrics subscriptions: a named one is
			// described with no configs, as Kafka describes an unknown one.
			if rr.ResourceName == "" {
				out.ErrorCode = kerr.InvalidRequest.Code
				out.ErrorMessage = kmsg.StringPtr("Client metrics subscription name must not be empty")
			}
		default:
			out.ErrorCode = kerr.InvalidRequest.Code
			out.ErrorMessage = kmsg.StringPtr("Unsupported resource type " + strconv.Itoa(int(rr.ResourceType)) + ".")
		}
		resp.Resources = append(resp.Resources, out)
	}
	return now(resp), nil
}

// describeTopic renders a topic's effective configuration.
func describeTopic(cfg *config.Config, overrides map[string]string, wanted func(string) bool, synonyms, docs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	defaults := cfg.TopicDefaults()
	brokerEntries := map[string]config.Entry{}
	for _, e := range cfg.Describe() {
		brokerEntries[e.Name] = e
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, k := range config.TopicConfigKeys() {
		if !wanted(k.Name) {
			continue
		}
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name, rc.ConfigType = k.Name, k.Type
		if docs {
			rc.Documentation = kmsg.StringPtr(k.Doc)
		}
		if v, ok := overrides[k.Name]; ok {
			rc.Value, rc.Source = kmsg.StringPtr(v), sourceDynamicTopic
			if synonyms {
				s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				s.Name, s.Value, s.Source = k.Name, rc.Value, sourceDynamicTopic
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, s)
			}
		} else {
			rc.Source = sourceDefaultConfig
			if v, ok := defaults[k.Name]; ok {
				rc.Value = kmsg.StringPtr(v)
			}
			for _, syn := range k.Synonyms {
				if e, ok := brokerEntries[syn]; ok && !e.IsDefault {
					rc.Source = sourceStaticBroker
					break
				}
			}
		}
		if synonyms {
			for _, syn := range k.Synonyms {
				e, ok := brokerEntries[syn]
				if !ok || e.Value == nil {
					continue
				}
				s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				s.Name, s.Value, s.Source = syn, e.Value, sourceDefaultConfig
				if !e.IsDefault {
					s.Source = sourceStaticBroker
				}
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, s)
			}
		}
		out = append(out, rc)
	}
	return out
}

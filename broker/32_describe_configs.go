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
	resourceTopic  = 2
	resourceBroker = 4
)

func handleDescribeConfigs(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeConfigsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
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
			t := img.Topics[rr.ResourceName]
			if t == nil {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.ErrorMessage = kmsg.StringPtr("Topic '" + rr.ResourceName + "' does not exist.")
				break
			}
			out.Configs = describeTopic(c.b.cfg, t.Configs, wanted, r.IncludeSynonyms, r.IncludeDocumentation)
		case resourceBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(c.b.nodeID)) {
				out.ErrorCode = kerr.InvalidRequest.Code
				out.ErrorMessage = kmsg.StringPtr("Broker " + rr.ResourceName + " does not match this broker's id; send the request to that broker.")
				break
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

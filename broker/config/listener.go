package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Security protocols Kafka knows. Only PLAINTEXT is served today.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

var securityProtocols = []string{ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL}

// Listener is one entry of listeners or advertised.listeners, e.g.
// PLAINTEXT://:9092 or INTERNAL://[::1]:9093.
type Listener struct {
	// Name is the listener name, upper-cased as Kafka normalises it.
	Name string
	// Host is the host or IP literal without brackets. Empty means every
	// interface when binding and the machine's hostname when advertising.
	Host string
	// Port is the TCP port; 0 binds an ephemeral port.
	Port int32
}

// Addr is the host:port to bind or dial, with IPv6 literals bracketed.
func (l Listener) Addr() string {
	return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
}

// String renders the listener in the form it is configured in.
func (l Listener) String() string {
	return l.Name + "://" + l.Addr()
}

// parseListeners reads a comma-separated listener list. It checks syntax
// only; names, ports and protocols are checked by Validate, once every key is
// known.
func parseListeners(value string) ([]Listener, error) {
	out := []Listener{}
	for _, entry := range splitCSV(value) {
		l, err := parseListener(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

const listenerForm = "a comma-separated list of NAME://host:port entries (host may be empty or an [IPv6] literal)"

func parseListener(entry string) (Listener, error) {
	sep := strings.Index(entry, "://")
	if sep < 0 {
		return Listener{}, fmt.Errorf("%q has no \"://\"", entry)
	}
	name := strings.ToUpper(strings.TrimSpace(entry[:sep]))
	if name == "" {
		return Listener{}, fmt.Errorf("%q has an empty listener name", entry)
	}
	rest := entry[sep+3:]
	var host, port string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return Listener{}, fmt.Errorf("%q: want [ipv6]:port", entry)
		}
		host, port = rest[1:end], rest[end+2:]
	} else {
		colon := strings.LastIndex(rest, ":")
		if colon < 0 {
			return Listener{}, fmt.Errorf("%q has no port", entry)
		}
		host, port = rest[:colon], rest[colon+1:]
	}
	for _, c := range host {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("-%._:", c)) {
			return Listener{}, fmt.Errorf("%q: invalid character %q in host", entry, c)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return Listener{}, fmt.Errorf("%q: port %q is not a number", entry, port)
	}
	if p < 0 || p > 65535 {
		return Listener{}, fmt.Errorf("%q: port %d is outside 0..65535", entry, p)
	}
	return Listener{Name: name, Host: host, Port: int32(p)}, nil
}

// parseProtocolMap reads listener.security.protocol.map: NAME:PROTOCOL pairs,
// comma separated. Names and protocols are upper-cased; a repeated name keeps
// its last protocol, as Kafka's map does.
func parseProtocolMap(value string) (map[string]string, error) {
	m := map[string]string{}
	for _, entry := range splitCSV(value) {
		name, proto, ok := strings.Cut(entry, ":")
		name, proto = strings.ToUpper(strings.TrimSpace(name)), strings.ToUpper(strings.TrimSpace(proto))
		if !ok || name == "" || strings.Contains(proto, ":") {
			return nil, fmt.Errorf("%q is not NAME:PROTOCOL", entry)
		}
		if !isSecurityProtocol(proto) {
			return nil, fmt.Errorf("%q: unknown security protocol %s (known: %s)", entry, proto, strings.Join(securityProtocols, ", "))
		}
		m[name] = proto
	}
	return m, nil
}

func isSecurityProtocol(p string) bool {
	for _, known := range securityProtocols {
		if p == known {
			return true
		}
	}
	return false
}

func formatListeners(ls []Listener) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.String()
	}
	return strings.Join(parts, ",")
}

func formatProtocolMap(m map[string]string) string {
	// Kafka's default lists PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL first;
	// keep known protocol names in that order, then the rest sorted.
	var parts []string
	seen := map[string]bool{}
	for _, p := range securityProtocols {
		if v, ok := m[p]; ok {
			parts = append(parts, p+":"+v)
			seen[p] = true
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sortStrings(rest)
	for _, k := range rest {
		parts = append(parts, k+":"+m[k])
	}
	return strings.Join(parts, ",")
}

// SecurityProtocol is the protocol listener.security.protocol.map gives the
// named listener.
func (c *Config) SecurityProtocol(listenerName string) (string, bool) {
	p, ok := c.ListenerSecurityProtocolMap[strings.ToUpper(listenerName)]
	return p, ok
}

// SecurityProtocolFor is SecurityProtocol without the found flag: "" for
// an unmapped listener (Validate rejects those).
func (c *Config) SecurityProtocolFor(listenerName string) string {
	p, _ := c.SecurityProtocol(listenerName)
	return p
}

// InterBrokerListener is the name of the listener brokers use to reach each
// other: inter.broker.listener.name, or else the listener named after
// security.inter.broker.protocol (PLAINTEXT by default), as in Kafka.
func (c *Config) InterBrokerListener() string {
	if c.InterBrokerListenerName != "" {
		return strings.ToUpper(c.InterBrokerListenerName)
	}
	return strings.ToUpper(c.SecurityInterBrokerProtocol)
}

// validateListeners applies Kafka's listener rules (CoreUtils
// listenerListToEndPoints and KafkaConfig.validateValues) plus kbroker's
// "PLAINTEXT only for now".
func (c *Config) validateListeners() error {
	if len(c.Listeners) == 0 {
		return invalidf("listeners: at least one listener is required")
	}
	if err := c.checkListenerSet("listeners", c.Listeners, true); err != nil {
		return err
	}
	for _, l := range c.Listeners {
		proto, _ := c.SecurityProtocol(l.Name)
		if proto != ProtocolPlaintext {
			return invalidf("listeners: listener %s uses security protocol %s, which kbroker does not support yet; only PLAINTEXT listeners are supported", l.Name, proto)
		}
	}
	advertised := c.AdvertisedListeners
	if advertised == nil {
		advertised = c.Listeners
	} else {
		if len(advertised) == 0 {
			return invalidf("advertised.listeners: there must be at least one advertised listener")
		}
		if err := c.checkListenerSet("advertised.listeners", advertised, false); err != nil {
			return err
		}
	}
	bound := map[string]bool{}
	for _, l := range c.Listeners {
		bound[l.Name] = true
	}
	for _, l := range advertised {
		if !bound[l.Name] {
			return invalidf("advertised.listeners: listener name %s is not defined in listeners (%s)", l.Name, formatListeners(c.Listeners))
		}
		if ip := net.ParseIP(l.Host); ip != nil && ip.IsUnspecified() {
			return invalidf("advertised.listeners: %s cannot advertise the non-routable address %s; use a routable address", l.Name, l.Host)
		}
	}
	if c.explicit["inter.broker.listener.name"] && c.explicit["security.inter.broker.protocol"] {
		return invalidf("only one of inter.broker.listener.name and security.inter.broker.protocol may be set")
	}
	if c.SecurityInterBrokerProtocol != ProtocolPlaintext {
		return invalidf("security.inter.broker.protocol: %s is not supported yet; only PLAINTEXT is", c.SecurityInterBrokerProtocol)
	}
	ib := c.InterBrokerListener()
	if _, ok := c.SecurityProtocol(ib); !ok {
		return invalidf("inter.broker.listener.name: listener %s is not in listener.security.protocol.map", ib)
	}
	for _, l := range advertised {
		if l.Name == ib {
			return nil
		}
	}
	return invalidf("inter.broker.listener.name: %s must be one of the advertised listener names (%s)", ib, formatListeners(advertised))
}

// checkListenerSet checks one list: names unique and mapped to a protocol,
// ports in range and, for bound listeners, distinct unless one is IPv4 and
// the other IPv6 (port 0 is exempt).
func (c *Config) checkListenerSet(key string, ls []Listener, distinctPorts bool) error {
	names := map[string]bool{}
	byPort := map[int32][]Listener{}
	for _, l := range ls {
		if names[l.Name] {
			return invalidf("%s: listener name %s appears more than once", key, l.Name)
		}
		names[l.Name] = true
		if l.Port < 0 || l.Port > 65535 {
			return invalidf("%s: listener %s has port %d outside 0..65535", key, l.Name, l.Port)
		}
		if _, ok := c.SecurityProtocol(l.Name); !ok {
			return invalidf("%s: no security protocol defined for listener %s; add it to listener.security.protocol.map", key, l.Name)
		}
		if l.Port != 0 {
			byPort[l.Port] = append(byPort[l.Port], l)
		}
	}
	if !distinctPorts {
		return nil
	}
	for port, dup := range byPort {
		if len(dup) == 1 {
			continue
		}
		if len(dup) == 2 && ipFamily(dup[0].Host)+ipFamily(dup[1].Host) == 10 {
			continue // one IPv4 literal and one IPv6 literal
		}
		return invalidf("%s: listeners %s and %s share port %d; ports must differ unless one listener is on an IPv4 address and the other on an IPv6 address", key, dup[0].Name, dup[1].Name, port)
	}
	return nil
}

// ipFamily is 4 for an IPv4 literal, 6 for an IPv6 literal, 0 otherwise.
func ipFamily(host string) int {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return 0
	case ip.To4() != nil && !strings.Contains(host, ":"):
		return 4
	default:
		return 6
	}
}

package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// group is a section of Help.
type group int

const (
	groupBroker group = iota
	groupListeners
	groupLog
	groupLimits
	groupReplication
	groupCoordinators
	groupEtcd
	groupMetrics
	numGroups
)

var groupTitles = [numGroups]string{
	groupBroker:       "Broker",
	groupListeners:    "Listeners",
	groupLog:          "Log",
	groupLimits:       "Limits",
	groupReplication:  "Replication",
	groupCoordinators: "Groups and transactions",
	groupEtcd:         "etcd",
	groupMetrics:      "Metrics",
}

// keyDef describes one broker key: how to parse it into a Config, render it
// back, re-check it, and document it. The table of keyDefs (brokerKeys) is the
// single source for Parse, Validate, Describe and Help.
type keyDef struct {
	name string
	// aliases set the same field; the one set last wins (broker.id).
	aliases []string
	// fallback is an alias that only applies when the key itself is never
	// set (log.dir for log.dirs).
	fallback string
	group    group
	typ      kmsg.ConfigType
	typeName string // for Help: int, long, short, bool, string, list, double
	allowed  string // for Help: what values are valid, "" when any
	doc      string // one line for Help
	field    string // the Config field it fills, checked by tests
	set      func(c *Config, raw string) error
	get      func(c *Config) *string // nil: no value (Kafka's null)
	check    func(c *Config) error   // re-checks the field's range; may be nil
}

func strp(s string) *string { return &s }

// integer is the Go type of a Kafka SHORT, INT or LONG key.
type integer interface{ ~int16 | ~int32 | ~int64 }

func numKey[T integer](g group, name, field string, r intRange, p func(*Config) *T, doc string) keyDef {
	return keyDef{
		name: name, group: g, typ: r.configType(), typeName: r.typeName(), allowed: r.allowed(), doc: doc, field: field,
		set: func(c *Config, raw string) error {
			v, err := r.parse(name, raw)
			if err == nil {
				*p(c) = T(v)
			}
			return err
		},
		get:   func(c *Config) *string { return strp(strconv.FormatInt(int64(*p(c)), 10)) },
		check: func(c *Config) error { return r.check(name, int64(*p(c))) },
	}
}

// optNumKey is an integer key with no default (Kafka's null): nil until set.
func optNumKey[T integer](g group, name, field string, r intRange, p func(*Config) **T, doc string) keyDef {
	return keyDef{
		name: name, group: g, typ: r.configType(), typeName: r.typeName(), allowed: r.allowed(), doc: doc, field: field,
		set: func(c *Config, raw string) error {
			v, err := r.parse(name, raw)
			if err == nil {
				tv := T(v)
				*p(c) = &tv
			}
			return err
		},
		get: func(c *Config) *string {
			if *p(c) == nil {
				return nil
			}
			return strp(strconv.FormatInt(int64(**p(c)), 10))
		},
		check: func(c *Config) error {
			if *p(c) == nil {
				return nil
			}
			return r.check(name, int64(**p(c)))
		},
	}
}

func boolKey(g group, name, field string, p func(*Config) *bool, doc string) keyDef {
	return keyDef{
		name: name, group: g, typ: kmsg.ConfigTypeBoolean, typeName: "bool", doc: doc, field: field,
		set: func(c *Config, raw string) error {
			v, err := parseBool(name, raw)
			if err == nil {
				*p(c) = v
			}
			return err
		},
		get: func(c *Config) *string { return strp(strconv.FormatBool(*p(c))) },
	}
}

// stringKey is a STRING key; a non-nil allowed restricts it to those values
// (case-sensitive, as Kafka's ValidString).
func stringKey(g group, name, field string, allowed []string, p func(*Config) *string, doc string) keyDef {
	d := keyDef{
		name: name, group: g, typ: kmsg.ConfigTypeString, typeName: "string", doc: doc, field: field,
		set: func(c *Config, raw string) error {
			if allowed != nil {
				if err := oneOf(name, raw, allowed); err != nil {
					return err
				}
			}
			*p(c) = raw
			return nil
		},
		get: func(c *Config) *string { return strp(*p(c)) },
	}
	if allowed != nil {
		d.allowed = "one of " + strings.Join(allowed, ", ")
		d.check = func(c *Config) error { return oneOf(name, *p(c), allowed) }
	}
	return d
}

// checkedStringKey is a STRING key with a custom validator.
func checkedStringKey(g group, name, field, allowed string, valid func(string) error, p func(*Config) *string, doc string) keyDef {
	wrap := func(v string) error {
		if err := valid(v); err != nil {
			return &InvalidValueError{Key: name, Value: v, Reason: err.Error()}
		}
		return nil
	}
	return keyDef{
		name: name, group: g, typ: kmsg.ConfigTypeString, typeName: "string", allowed: allowed, doc: doc, field: field,
		set: func(c *Config, raw string) error {
			if err := wrap(raw); err != nil {
				return err
			}
			*p(c) = raw
			return nil
		},
		get:   func(c *Config) *string { return strp(*p(c)) },
		check: func(c *Config) error { return wrap(*p(c)) },
	}
}

// csvKey is a comma-separated list with empty items dropped (Kafka's
// Csv.parseCsvList), each item checked by valid when it is non-nil.
func csvKey(g group, name, field, allowed string, valid func(string) error, p func(*Config) *[]string, doc string) keyDef {
	checkAll := func(items []string) error {
		if valid == nil {
			return nil
		}
		for _, it := range items {
			if err := valid(it); err != nil {
				return &InvalidValueError{Key: name, Value: strings.Join(items, ","), Reason: fmt.Sprintf("%q: %v", it, err)}
			}
		}
		return nil
	}
	return keyDef{
		name: name, group: g, typ: kmsg.ConfigTypeString, typeName: "list", allowed: allowed, doc: doc, field: field,
		set: func(c *Config, raw string) error {
			items := splitCSV(raw)
			if err := checkAll(items); err != nil {
				return err
			}
			*p(c) = items
			return nil
		},
		get:   func(c *Config) *string { return strp(strings.Join(*p(c), ",")) },
		check: func(c *Config) error { return checkAll(*p(c)) },
	}
}

// validHTTPURL accepts http://host:port, the form etcd's embed listener URLs
// take here (the embedded member is not configured for TLS).
func validHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("must be an http://host:port URL")
	}
	if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
		return fmt.Errorf("must be an http://host:port URL with a port in 0..65535")
	}
	return nil
}

// validEtcdEndpoint accepts what the etcd client dials: host:port or an
// http(s)://host:port URL.
func validEtcdEndpoint(v string) error {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("must be host:port or an http(s)://host:port URL")
		}
		return nil
	}
	return validHostPort(v, false)
}

// validHostPort accepts host:port with a numeric port; emptyHostOK allows
// ":port" (all interfaces).
func validHostPort(v string, emptyHostOK bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || (host == "" && !emptyHostOK) {
		return fmt.Errorf("must be host:port")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("must be host:port with a port in 0..65535")
	}
	return nil
}

// lookupKey finds the definition of a canonical key or alias.
func lookupKey(name string) *keyDef {
	if d, ok := keyIndex[name]; ok {
		return d
	}
	return nil
}

var keyIndex = func() map[string]*keyDef {
	m := map[string]*keyDef{}
	for i := range brokerKeys {
		d := &brokerKeys[i]
		for _, n := range append([]string{d.name, d.fallback}, d.aliases...) {
			if n == "" {
				continue
			}
			if _, dup := m[n]; dup {
				panic("config: key " + n + " defined twice") // programming error in the table
			}
			m[n] = d
		}
	}
	return m
}()

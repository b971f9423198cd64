package config

import (
	"reflect"
	"strings"
	"testing"
)

// Every exported Config field is filled by exactly one key, and every key
// names a real field: a field added without a key (or the reverse) fails here.
func TestEveryFieldHasAKey(t *testing.T) {
	typ := reflect.TypeOf(Config{})
	byField := map[string]string{}
	for _, d := range brokerKeys {
		if _, ok := typ.FieldByName(d.field); !ok {
			t.Errorf("key %s names missing field %q", d.name, d.field)
		}
		if prev, dup := byField[d.field]; dup {
			t.Errorf("field %s filled by both %s and %s", d.field, prev, d.name)
		}
		byField[d.field] = d.name
	}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.IsExported() && byField[f.Name] == "" {
			t.Errorf("field %s has no key", f.Name)
		}
	}
}

// Each key's setter fills the field it claims, and only that field.
func TestEachKeySetsItsField(t *testing.T) {
	samples := map[string]string{
		"node.id": "5", "broker.rack": "r9", "log.level": "DEBUG",
		"listeners": "PLAINTEXT://h:1", "advertised.listeners": "PLAINTEXT://h:2",
		"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT", "inter.broker.listener.name": "x",
		"security.inter.broker.protocol": "SSL", "log.dirs": "/d", "log.cleanup.policy": "compact",
		"log.message.timestamp.type": "LogAppendTime", "compression.type": "zstd",
		"compression.gzip.level": "5", "compression.lz4.level": "3", "compression.zstd.level": "-5",
		"log.cleaner.min.cleanable.ratio": "0.25", "etcd.endpoints": "h:1",
		"etcd.embed.client.url": "http://h:1", "etcd.embed.peer.url": "http://h:2",
		"etcd.embed.initial.cluster": "1=http://h:2380,2=http://g:2380",
		"kbroker.metrics.listener":   ":9404",
		"replica.selector.class":     RackAwareReplicaSelector,
	}
	for _, d := range brokerKeys {
		sample, ok := samples[d.name]
		if !ok {
			switch d.typ.String() {
			case "BOOLEAN":
				def := *d.get(NewConfig())
				sample = map[string]string{"true": "false", "false": "true"}[def]
			default:
				sample = "12345"
			}
		}
		c, base := NewConfig(), NewConfig()
		if err := d.set(c, sample); err != nil {
			t.Errorf("%s: set(%q): %v", d.name, sample, err)
			continue
		}
		cv, bv := reflect.ValueOf(c).Elem(), reflect.ValueOf(base).Elem()
		for i := 0; i < cv.NumField(); i++ {
			name := cv.Type().Field(i).Name
			if !cv.Type().Field(i).IsExported() {
				continue
			}
			changed := !reflect.DeepEqual(cv.Field(i).Interface(), bv.Field(i).Interface())
			if changed != (name == d.field) {
				t.Errorf("%s=%s: field %s changed=%v", d.name, sample, name, changed)
			}
		}
	}
}

// The default of every key renders to a string its own parser accepts and
// that renders back the same, so Describe and Help show real values.
func TestDefaultsRoundTrip(t *testing.T) {
	for _, d := range brokerKeys {
		v := d.get(NewConfig())
		if v == nil {
			continue
		}
		c := NewConfig()
		if err := d.set(c, *v); err != nil {
			t.Errorf("%s: default %q does not parse: %v", d.name, *v, err)
			continue
		}
		if got := d.get(c); got == nil || *got != *v {
			t.Errorf("%s: round trip %q -> %v", d.name, *v, got)
		}
	}
}

func TestHelpListsEveryKey(t *testing.T) {
	h := Help()
	if !strings.HasPrefix(h, "Usage: kbroker [server.properties] [--override key=value]...") {
		t.Fatalf("help should start with the command line:\n%s", h)
	}
	for _, title := range groupTitles {
		if !strings.Contains(h, "\n"+title+":\n") {
			t.Errorf("help lacks group %q", title)
		}
	}
	lines := strings.Split(h, "\n")
	for _, d := range brokerKeys {
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, "  "+d.name+" ") {
				found = true
				if !strings.Contains(l, d.typeName) || !strings.Contains(l, "default ") {
					t.Errorf("help line for %s lacks type or default: %q", d.name, l)
				}
				if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != d.doc {
					t.Errorf("help for %s lacks its meaning line", d.name)
				}
			}
		}
		if !found {
			t.Errorf("help does not list %s", d.name)
		}
		for _, a := range append(d.aliases, d.fallback) {
			if a != "" && !strings.Contains(h, a) {
				t.Errorf("help does not mention alias %s", a)
			}
		}
	}
	for k := range ignoredKafkaKeys {
		if !strings.Contains(h, k) {
			t.Errorf("help does not list ignored key %s", k)
		}
	}
	for _, want := range []string{"num.partitions  int  default 1  [an integer >= 1]", "log.roll.ms  long  default unset", "node.id (alias broker.id)", "log.dirs (alias log.dir)"} {
		if !strings.Contains(h, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestIgnoredKeysAreNotImplementedKeys(t *testing.T) {
	for k := range ignoredKafkaKeys {
		if lookupKey(k) != nil {
			t.Errorf("%s is both implemented and ignored", k)
		}
	}
	for _, d := range brokerKeys {
		if classifyKey(d.name) != kindImplemented {
			t.Errorf("%s not classified as implemented", d.name)
		}
	}
	if classifyKey("listener.name.internal.ssl.keystore.location") != kindIgnoredKafka || classifyKey("no.such.key") != kindUnknown {
		t.Error("prefix classification wrong")
	}
}

func TestDescribe(t *testing.T) {
	c, _ := mustParse(t, "--override", "num.partitions=4", "--override", "broker.id=3")
	entries := c.Describe()
	if len(entries) != len(brokerKeys) {
		t.Fatalf("Describe has %d entries, want %d", len(entries), len(brokerKeys))
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	check := func(name, value string, isDefault bool) {
		t.Helper()
		e, ok := byName[name]
		if !ok {
			t.Fatalf("no entry %s", name)
		}
		if e.Value == nil || *e.Value != value || e.IsDefault != isDefault {
			t.Errorf("%s: value %v default %v, want %q %v", name, e.Value, e.IsDefault, value, isDefault)
		}
	}
	check("num.partitions", "4", false)
	check("node.id", "3", false)
	check("message.max.bytes", "1048588", true)
	check("listeners", "PLAINTEXT://:9092", true)
	check("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", true)
	if e := byName["log.roll.ms"]; e.Value != nil || !e.IsDefault {
		t.Errorf("log.roll.ms should have a null default value, got %v", e.Value)
	}
}

package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Entry is one broker key as DescribeConfigs reports it.
type Entry struct {
	Name string
	// Value is the current value rendered as Kafka renders it; nil for a key
	// with no value (Kafka's null, e.g. log.roll.ms when unset).
	Value *string
	// IsDefault is false when the file or an override set the key.
	IsDefault bool
	Type      kmsg.ConfigType
	Doc       string
}

// Describe lists every implemented broker key with its current value, in
// Help order, for DescribeConfigs on a broker resource.
func (c *Config) Describe() []Entry {
	out := make([]Entry, 0, len(brokerKeys))
	for _, d := range brokerKeys {
		out = append(out, Entry{
			Name:      d.name,
			Value:     d.get(c),
			IsDefault: !c.explicit[d.name],
			Type:      d.typ,
			Doc:       d.doc,
		})
	}
	return out
}

// Help is the usage text: the command line, then every key with its type,
// default and meaning, grouped.
func Help() string {
	var b strings.Builder
	b.WriteString(`Usage: kbroker [server.properties] [--override key=value]...

Starts a Kafka-compatible broker. The optional first argument is a Java
.properties file (a Kafka server.properties works). Each --override key=value
(or --override=key=value) sets one key after the file is read; the last
setting of a key wins. Apache Kafka keys kbroker does not implement are
accepted and ignored with a warning.

Options:
  -h, --help     show this help and exit
  --version      print the version and exit

Keys (Kafka's names and defaults unless noted):
`)
	defaults := NewConfig()
	for g := group(0); g < numGroups; g++ {
		fmt.Fprintf(&b, "\n%s:\n", groupTitles[g])
		for _, d := range brokerKeys {
			if d.group != g {
				continue
			}
			name := d.name
			var alt []string
			alt = append(alt, d.aliases...)
			if d.fallback != "" {
				alt = append(alt, d.fallback)
			}
			if len(alt) > 0 {
				name += " (alias " + strings.Join(alt, ", ") + ")"
			}
			def := "unset"
			if v := d.get(defaults); v != nil {
				def = *v
				if def == "" {
					def = `""`
				}
			}
			fmt.Fprintf(&b, "  %s  %s  default %s", name, d.typeName, def)
			if d.allowed != "" {
				fmt.Fprintf(&b, "  [%s]", d.allowed)
			}
			fmt.Fprintf(&b, "\n      %s\n", d.doc)
		}
	}
	var ignored []string
	for k := range ignoredKafkaKeys {
		ignored = append(ignored, k)
	}
	sort.Strings(ignored)
	b.WriteString("\n")
	b.WriteString(wrap(fmt.Sprintf("Apache Kafka keys accepted with a warning and ignored: %s, and keys starting with %s.",
		strings.Join(ignored, ", "), strings.Join(ignoredKafkaPrefixes, ", ")), 78))
	return b.String()
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		if col > 0 && col+1+len(w) > width {
			b.WriteString("\n")
			col = 0
		} else if col > 0 {
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\n")
	return b.String()
}

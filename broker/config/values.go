package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file holds the typed value parsers shared by broker and topic keys.
// Values arrive trimmed, as Kafka's ConfigDef trims them.

// intRange describes an integer key: its width (Kafka's SHORT, INT or LONG)
// and inclusive bounds, plus isolated values allowed outside the bounds (such
// as -1 for compression.gzip.level).
type intRange struct {
	bits     int // 16, 32 or 64
	min, max int64
	extra    []int64
}

func typeBounds(bits int) (int64, int64) {
	switch bits {
	case 16:
		return math.MinInt16, math.MaxInt16
	case 32:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

// anyInt, atLeast and between build ranges of the given width.
func anyInt(bits int) intRange {
	lo, hi := typeBounds(bits)
	return intRange{bits: bits, min: lo, max: hi}
}

func atLeast(bits int, min int64) intRange {
	_, hi := typeBounds(bits)
	return intRange{bits: bits, min: min, max: hi}
}

func between(bits int, min, max int64) intRange {
	return intRange{bits: bits, min: min, max: max}
}

func (r intRange) configType() kmsg.ConfigType {
	switch r.bits {
	case 16:
		return kmsg.ConfigTypeShort
	case 32:
		return kmsg.ConfigTypeInt
	}
	return kmsg.ConfigTypeLong
}

func (r intRange) typeName() string {
	switch r.bits {
	case 16:
		return "short"
	case 32:
		return "int"
	}
	return "long"
}

// allowed is the "what is allowed" text of error messages and help.
func (r intRange) allowed() string {
	lo, hi := typeBounds(r.bits)
	var s string
	switch {
	case r.min == lo && r.max == hi:
		s = "an integer"
	case r.max == hi:
		s = fmt.Sprintf("an integer >= %d", r.min)
	case r.min == lo:
		s = fmt.Sprintf("an integer <= %d", r.max)
	default:
		s = fmt.Sprintf("an integer between %d and %d", r.min, r.max)
	}
	for _, e := range r.extra {
		s += fmt.Sprintf(" or %d", e)
	}
	return s
}

func (r intRange) ok(v int64) bool {
	if v >= r.min && v <= r.max {
		return true
	}
	for _, e := range r.extra {
		if v == e {
			return true
		}
	}
	return false
}

// parse reads a base-10 integer and checks it against the range.
func (r intRange) parse(key, raw string) (int64, error) {
	v, err := strconv.ParseInt(raw, 10, r.bits)
	if err == nil && r.ok(v) {
		return v, nil
	}
	reason := "must be " + r.allowed()
	if errors.Is(err, strconv.ErrRange) {
		lo, hi := typeBounds(r.bits)
		reason += fmt.Sprintf(" within %d..%d", lo, hi)
	}
	return 0, &InvalidValueError{Key: key, Value: raw, Reason: reason}
}

func (r intRange) check(key string, v int64) error {
	if !r.ok(v) {
		return &InvalidValueError{Key: key, Value: strconv.FormatInt(v, 10), Reason: "must be " + r.allowed()}
	}
	return nil
}

// parseBool accepts true/false in any case, as Kafka does.
func parseBool(key, raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &InvalidValueError{Key: key, Value: raw, Reason: "must be true or false"}
}

// oneOf checks a case-sensitive enumeration, as Kafka's ValidString does.
func oneOf(key, raw string, allowed []string) error {
	for _, a := range allowed {
		if raw == a {
			return nil
		}
	}
	return &InvalidValueError{Key: key, Value: raw, Reason: "must be one of " + strings.Join(allowed, ", ")}
}

// parseRatio reads a double in [0, 1].
func parseRatio(key, raw string) (float64, error) {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return 0, &InvalidValueError{Key: key, Value: raw, Reason: "must be a number between 0 and 1"}
	}
	return v, nil
}

// formatDouble renders a double the way Java's Double.toString does for
// ordinary magnitudes (0.5, 1.0).
func formatDouble(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEN") {
		s += ".0"
	}
	return s
}

// splitList splits Kafka's LIST type: comma separated, blanks around items
// trimmed, an empty string is the empty list.
func splitList(raw string) []string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return []string{}
	}
	parts := strings.Split(raw, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// splitCSV is Kafka's Csv.parseCsvList: like splitList but empty items are
// dropped.
func splitCSV(raw string) []string {
	out := []string{}
	for _, p := range splitList(raw) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkList checks every item of a LIST against an enumeration.
func checkList(key string, items []string, allowed []string) error {
	for _, it := range items {
		if err := oneOf(key, it, allowed); err != nil {
			return &InvalidValueError{Key: key, Value: strings.Join(items, ","), Reason: "must be a comma-separated list of " + strings.Join(allowed, ", ")}
		}
	}
	return nil
}

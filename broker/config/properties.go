package config

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// property is one key/value pair read from a properties file, with the line
// its logical line started on, for error messages.
type property struct {
	key, value string
	line       int
}

// parseProperties reads text with java.util.Properties rules (see the package
// doc for the format). Pairs come back in file order; a repeated key appears
// twice, and applying them in order makes the last one win.
func parseProperties(text string) ([]property, error) {
	lines := splitNaturalLines(text)
	var props []property
	for i := 0; i < len(lines); i++ {
		start := i
		line := trimLeadingBlanks(lines[i])
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// Join continuation lines. A line continues when it ends with an odd
		// number of backslashes; the last one is the continuation marker.
		var logical strings.Builder
		for {
			cont := trailingBackslashes(line)%2 == 1
			if cont {
				line = line[:len(line)-1]
			}
			logical.WriteString(line)
			if !cont || i+1 >= len(lines) {
				break
			}
			i++
			line = trimLeadingBlanks(lines[i])
			if line == "" {
				// An empty continuation line ends the logical line.
				break
			}
		}
		key, value, err := splitProperty(logical.String())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start+1, err)
		}
		props = append(props, property{key: key, value: value, line: start + 1})
	}
	return props, nil
}

// splitNaturalLines splits at \n, \r and \r\n.
func splitNaturalLines(text string) []string {
	var lines []string
	for len(text) > 0 {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			lines = append(lines, text)
			break
		}
		lines = append(lines, text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return lines
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

func trimLeadingBlanks(s string) string {
	i := 0
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	return s[i:]
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

// splitProperty separates a logical line into its unescaped key and value.
func splitProperty(line string) (key, value string, err error) {
	keyEnd, valueStart := len(line), len(line)
	hasSep, escaped := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if !escaped && (c == '=' || c == ':') {
			keyEnd, valueStart, hasSep = i, i+1, true
			break
		}
		if !escaped && isBlank(c) {
			keyEnd, valueStart = i, i+1
			break
		}
		escaped = c == '\\' && !escaped
	}
	for valueStart < len(line) {
		c := line[valueStart]
		if !isBlank(c) {
			if hasSep || (c != '=' && c != ':') {
				break
			}
			hasSep = true
		}
		valueStart++
	}
	if key, err = unescapeProperty(line[:keyEnd]); err != nil {
		return "", "", fmt.Errorf("key: %w", err)
	}
	if value, err = unescapeProperty(line[valueStart:]); err != nil {
		return "", "", fmt.Errorf("value of %s: %w", key, err)
	}
	return key, value, nil
}

// unescapeProperty resolves the backslash escapes of a key or value.
func unescapeProperty(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c = s[i]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			unit, ok := hex4(s[i+1:])
			if !ok {
				return "", fmt.Errorf(`malformed \uXXXX escape near %q`, s[i-1:min(len(s), i+5)])
			}
			i += 4
			r := rune(unit)
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by an escaped low surrogate is one
				// character; anything else is an unpaired surrogate.
				if low, ok := lowSurrogateEscape(s[i+1:]); ok {
					if pair := utf16.DecodeRune(r, rune(low)); pair != '\uFFFD' {
						r = pair
						i += 6
					}
				}
			}
			b.WriteRune(r)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// hex4 decodes exactly four hex digits at the start of s.
func hex4(s string) (uint16, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var v uint16
	for i := 0; i < 4; i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}

// lowSurrogateEscape reports whether s starts with \uXXXX naming a low
// surrogate.
func lowSurrogateEscape(s string) (uint16, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	v, ok := hex4(s[2:])
	return v, ok && v >= 0xDC00 && v <= 0xDFFF
}

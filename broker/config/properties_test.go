package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	tests := []struct {
		name string
		text string
		want [][2]string
	}{
		{"equals", "a=1", [][2]string{{"a", "1"}}},
		{"colon with blanks", "a : 1", [][2]string{{"a", "1"}}},
		{"blank separator", "a 1", [][2]string{{"a", "1"}}},
		{"blank then equals", "a   =   1", [][2]string{{"a", "1"}}},
		{"only first separator taken", "a:=1", [][2]string{{"a", "=1"}}},
		{"blank separator takes one equals", "a = =1", [][2]string{{"a", "=1"}}},
		{"value keeps trailing blanks", "a=1  ", [][2]string{{"a", "1  "}}},
		{"value keeps inner separators", "listeners=PLAINTEXT://h:9092", [][2]string{{"listeners", "PLAINTEXT://h:9092"}}},
		{"key only", "flag", [][2]string{{"flag", ""}}},
		{"key and separator only", "flag=", [][2]string{{"flag", ""}}},
		{"leading blanks", " \t\fa=1", [][2]string{{"a", "1"}}},
		{"comments and blank lines", "# c1\n! c2\n   # c3\n\n\t\na=1\n", [][2]string{{"a", "1"}}},
		{"hash inside value is not a comment", "a=x#y", [][2]string{{"a", "x#y"}}},
		{"continuation strips next leading blanks", "a=one,\\\n    two", [][2]string{{"a", "one,two"}}},
		{"continuation over several lines", "a=1\\\n2\\\n  3\nb=4", [][2]string{{"a", "123"}, {"b", "4"}}},
		{"continued line starting with hash is value", "a=1\\\n#2", [][2]string{{"a", "1#2"}}},
		{"even backslashes do not continue", "a=x\\\\\nb=y", [][2]string{{"a", `x\`}, {"b", "y"}}},
		{"comment ending in backslash does not continue", "# c \\\na=1", [][2]string{{"a", "1"}}},
		{"empty continuation line ends the value", "a=1\\\n\nb=2", [][2]string{{"a", "1"}, {"b", "2"}}},
		{"continuation at end of file", "a=1\\", [][2]string{{"a", "1"}}},
		{"escapes", `a=t\tn\nr\rf\fq\q\\`, [][2]string{{"a", "t\tn\nr\rf\fqq\\"}}},
		{"unicode escape", `a=caf\u00e9 \u0041`, [][2]string{{"a", "café A"}}},
		{"surrogate pair", `a=\uD83D\uDE00`, [][2]string{{"a", "😀"}}},
		{"lone surrogate", `a=\uD83Dx`, [][2]string{{"a", "\uFFFDx"}}},
		{"escaped separators in key", `a\=b\:c\ d=1`, [][2]string{{"a=b:c d", "1"}}},
		{"CRLF", "a=1\r\nb=2\r\n", [][2]string{{"a", "1"}, {"b", "2"}}},
		{"CR only", "a=1\rb=2", [][2]string{{"a", "1"}, {"b", "2"}}},
		{"CRLF continuation", "a=1\\\r\n  2", [][2]string{{"a", "12"}}},
		{"repeated key kept in order", "a=1\na=2", [][2]string{{"a", "1"}, {"a", "2"}}},
		{"empty file", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props, err := parseProperties(tt.text)
			if err != nil {
				t.Fatalf("parseProperties(%q): %v", tt.text, err)
			}
			var got [][2]string
			for _, p := range props {
				got = append(got, [2]string{p.key, p.value})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseProperties(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestParsePropertiesLineNumbers(t *testing.T) {
	props, err := parseProperties("# header\na=1\\\n 2\n\nb=3\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(props) != 2 || props[0].line != 2 || props[1].line != 5 {
		t.Fatalf("got %+v, want a at line 2 and b at line 5", props)
	}
}

func TestParsePropertiesMalformedUnicode(t *testing.T) {
	for _, text := range []string{`a=\u12`, `a=\uzzzz`, `\u00g0=1`} {
		_, err := parseProperties("ok=1\n" + text)
		if err == nil {
			t.Fatalf("parseProperties(%q): want error", text)
		}
		if !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), `\uXXXX`) {
			t.Fatalf("parseProperties(%q) error %q should name line 2 and the escape", text, err)
		}
	}
}

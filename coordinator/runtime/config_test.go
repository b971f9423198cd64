package runtime_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

func TestPartitionFor(t *testing.T) {
	for _, tc := range []struct {
		key  string
		n    int32
		want int32
	}{
		{"", 50, 0},
		{"x", 0, 0},
		{"hello", 50, 99162322 % 50},  // Java "hello".hashCode() = 99162322
		{"Hello World", 50, 26},       // hashCode -862545276: abs, not & 0x7fffffff (which gives 22)
		{"polygenelubricants", 50, 0}, // hashCode is MinInt32: Utils.abs gives 0
		{"é", 50, 33},                 // 233
		{"\U0001F600", 50, 49},        // surrogate pair: 55357*31 + 56832 = 1772899
		{"test", 7, 3556498 % 7},
	} {
		if got := runtime.PartitionFor(tc.key, tc.n); got != tc.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
	// A negative hash is negated (Utils.abs), not masked with 0x7fffffff.
	neg := "zzzzzzzz" // its Java hashCode overflows to a negative value
	var h int32
	for _, r := range neg {
		h = 31*h + r
	}
	if h >= 0 {
		t.Fatalf("test string should hash negative, got %d", h)
	}
	if got, want := runtime.PartitionFor(neg, 50), (-h)%50; got != want {
		t.Fatalf("negative hash: got %d, want %d", got, want)
	}
}

func TestProblems(t *testing.T) {
	errInvalid := errors.New("test: invalid config")
	var ok runtime.Problems
	ok.Reject(false, "never")
	if err := ok.Err(errInvalid); err != nil {
		t.Fatalf("no problems: %v", err)
	}
	var p runtime.Problems
	p.Reject(true, "a %d", 1)
	p.Reject(false, "skipped")
	p.Reject(true, "c %s", "x")
	err := p.Err(errInvalid)
	if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), "a 1") || !strings.Contains(err.Error(), "c x") || strings.Contains(err.Error(), "skipped") {
		t.Fatalf("problems: %v", err)
	}
}

func TestSetDefault(t *testing.T) {
	zero, neg, set := time.Duration(0), -1, int32(5)
	runtime.SetDefault(&zero, time.Second)
	runtime.SetDefault(&neg, 7)
	runtime.SetDefault(&set, 9)
	if zero != time.Second || neg != 7 || set != 5 {
		t.Fatalf("SetDefault: %v %v %v", zero, neg, set)
	}
}

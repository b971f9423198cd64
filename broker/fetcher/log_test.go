package fetcher

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the fetcher goroutine to write
// while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// unreachable returns the "cannot reach leader" lines about leader.
func (s *syncBuffer) unreachable(leader string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, `msg="cannot reach leader"`) && strings.Contains(l, " leader="+leader+" ") {
			out = append(out, l)
		}
	}
	return out
}

// A follower whose leader is down fails every backoff; the warning is
// logged once, not once per attempt (the rest go to Debug until a minute
// has passed, then one line carries their count).
func TestUnreachableLeaderWarnsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	var out syncBuffer
	b := &addrBook{addrs: map[int32]string{1: dead}}
	m := newTestManager(t, b, func(c *Config) {
		c.Backoff = 5 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", testNode)
	})
	m.Follow(1, newFakeReplica("t", 0, 0))
	// A leader with no address in the image is the same condition.
	m.Follow(2, newFakeReplica("u", 0, 0))
	waitFor(t, "ten failed attempts at leader 1", func() bool { return len(out.unreachable("1")) >= 10 })
	waitFor(t, "ten failed attempts at leader 2", func() bool { return len(out.unreachable("2")) >= 10 })

	for _, leader := range []string{"1", "2"} {
		lines := out.unreachable(leader)
		var warns int
		for _, l := range lines {
			if strings.Contains(l, "level=WARN") {
				warns++
			}
		}
		if warns != 1 || !strings.Contains(lines[0], "level=WARN") {
			t.Errorf("leader %s: %d warnings, want the first line only:\n%s", leader, warns, strings.Join(lines, "\n"))
		}
		if l := lines[0]; strings.Count(l, "node=") != 1 || strings.Count(l, "leader=") != 1 {
			t.Errorf("first line %q: want node and leader once each", l)
		}
	}
}

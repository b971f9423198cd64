package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReadyAddr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line, want string
	}{
		{`time=2026-01-01T00:00:00Z level=INFO msg="serving Kafka protocol" addr=127.0.0.1:4242 node=1`, "127.0.0.1:4242"},
		{`level=INFO msg="serving Kafka protocol" listener=PLAINTEXT addr="127.0.0.1:9092"`, "127.0.0.1:9092"},
		{`level=INFO msg="serving Kafka protocol" peer_addr=10.0.0.1:1 addr=[::1]:9092`, "[::1]:9092"},
		{`level=INFO msg="serving Kafka protocol" addr=127.0.0.1:5`, "127.0.0.1:5"},
		{`level=INFO msg="serving Kafka protocol"`, ""},
		{`level=INFO msg="serving Kafka protocol" addr=`, ""},
		{`level=INFO msg="serving Kafka protocol" addr="127.0.0.1:1`, ""},
		{`level=INFO msg="etcd ready" addr=127.0.0.1:2379`, ""},
		{`127.0.0.1:9092`, ""},
	}
	for _, c := range cases {
		got, err := readyAddr(c.line)
		if c.want == "" {
			if !errors.Is(err, errNoAddr) {
				t.Errorf("readyAddr(%q) = %q, %v; want errNoAddr", c.line, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("readyAddr(%q) = %q, %v; want %q", c.line, got, err, c.want)
		}
	}
}

// shSpec runs a shell script as the "broker".
func shSpec(script string) serverSpec {
	return serverSpec{label: "sh", bin: "/bin/sh", args: func(string) []string { return []string{"-c", script} }}
}

func TestStartServerProcessExits(t *testing.T) {
	t.Parallel()
	_, err := startServer(context.Background(), shSpec("echo boom >&2; exit 3"), t.TempDir(), 30*time.Second)
	if !errors.Is(err, errExited) {
		t.Fatalf("err = %v, want errExited", err)
	}
	if !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error lacks the log tail: %v", err)
	}
}

func TestStartServerNeverReady(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := startServer(context.Background(), shSpec("exec sleep 60"), t.TempDir(), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("err = %v, want a not-ready error", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("startServer took %v to give up (stop must kill the child)", d)
	}
}

func TestStartServerAnnouncesButDoesNotServe(t *testing.T) {
	t.Parallel()
	script := `echo 'level=INFO msg="serving Kafka protocol" addr=127.0.0.1:1'; exec sleep 60`
	_, err := startServer(context.Background(), shSpec(script), t.TempDir(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "Metadata kept failing") {
		t.Fatalf("err = %v, want Metadata failure", err)
	}
}

package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestHealthcheckAddr(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{nil, "localhost:9092"},
		{[]string{"KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:19092"}, "localhost:19092"},
		{[]string{"KAFKA_LISTENERS=CONTROLLER://:9093,INTERNAL://kafka1:29092", "KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER"}, "kafka1:29092"},
		{[]string{"KAFKA_CFG_LISTENERS=PLAINTEXT://:9094", "KAFKA_LISTENERS=PLAINTEXT://:9095"}, "localhost:9094"},
		{[]string{"KAFKA_LISTENERS=garbage"}, "localhost:9092"},
	} {
		if got := healthcheckAddr(tt.env); got != tt.want {
			t.Errorf("healthcheckAddr(%q) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestCheckBrokerFailures: a closed port and a peer that is not Kafka both
// fail the check (the success path is covered by compat-tests/docker_test.go,
// where Docker reports the container healthy).
func TestCheckBrokerFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	if err := checkBroker(l.Addr().String(), 2*time.Second); err == nil {
		t.Fatal("a non-Kafka peer passed the health check")
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	if err := checkBroker(addr, 2*time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: err = %v, want connection refused", err)
	}
}

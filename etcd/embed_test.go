package etcd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestEmbeddedPortZeroAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Now()
	e1 := startEtcdIn(t, dir)
	t.Logf("fresh embedded etcd ready in %v at %v", time.Since(start), e1.Endpoints())
	u, err := url.Parse(e1.Endpoints()[0])
	if err != nil || u.Port() == "0" || u.Port() == "" {
		t.Fatalf("Endpoints() = %v, want a real port", e1.Endpoints())
	}
	e2 := startEtcd(t) // a second member on port 0 beside the first
	if e2.Endpoints()[0] == e1.Endpoints()[0] {
		t.Fatalf("two members share endpoint %s", e1.Endpoints()[0])
	}

	cli := dialT(t, e1)
	if _, err := cli.Put(testCtx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e1.Close(); err != nil { // idempotent
		t.Fatal(err)
	}

	start = time.Now()
	e3 := startEtcdIn(t, dir) // restart on new ports
	t.Logf("restarted embedded etcd ready in %v", time.Since(start))
	got, err := dialT(t, e3).Get(testCtx(t), "k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("after restart Get(k) = %v, %v", got, err)
	}
}

func TestEmbeddedPortBusy(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := "http://" + l.Addr().String()
	_, err = StartEmbedded(testCtx(t), EmbedConfig{Dir: t.TempDir(), ClientURL: busy, PeerURL: "http://127.0.0.1:0", Logger: testLogger()})
	if err == nil {
		t.Fatal("StartEmbedded on a busy port succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) ||
		!strings.Contains(err.Error(), "etcd.embed.client.url "+busy+": address already in use; choose another with --override etcd.embed.client.url=") {
		t.Fatalf("error = %v", err)
	}
	_, err = StartEmbedded(testCtx(t), EmbedConfig{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: busy, Logger: testLogger()})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "etcd.embed.peer.url") {
		t.Fatalf("busy peer port: error = %v", err)
	}
}

func TestEmbeddedBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []EmbedConfig{
		{},
		{Dir: t.TempDir(), ClientURL: "https://127.0.0.1:0"},
		{Dir: t.TempDir(), ClientURL: "http://127.0.0.1"},
		{Dir: t.TempDir(), PeerURL: "http://127.0.0.1:99999"},
	} {
		if _, err := StartEmbedded(context.Background(), cfg); err == nil {
			t.Errorf("StartEmbedded(%+v) succeeded", cfg)
		}
	}
}

func TestDialUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	_, err = dial([]string{addr}, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer from "+addr) {
		t.Fatalf("dial = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dial took %v", d)
	}
	if _, err := Dial(nil); err == nil {
		t.Fatal("Dial(nil) succeeded")
	}
}

func TestZapToSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	zl := newZapLogger(lg, "etcd-test", nil)
	zl.Info("chatty", zap.String("a", "b"))
	zl.Warn("benign")
	zl.Error("failed to update storage version", zap.Error(errors.New("missing term information")))
	zl.With(zap.Int("n", 7)).Error("broken", zap.Error(errors.New("boom")))
	out := buf.String()
	if strings.Contains(out, "chatty") || strings.Contains(out, "benign") || strings.Contains(out, "storage version") {
		t.Errorf("info/warn reached an Info-level slog handler: %s", out)
	}
	for _, want := range []string{"level=ERROR", "msg=broken", "component=etcd-test", "n=7", "err=boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

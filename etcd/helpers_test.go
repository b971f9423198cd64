package etcd

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testLogger shows etcd's and the store's warnings and errors on stderr; it
// must not use t.Log, which panics when etcd logs after the test ended.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startEtcd runs an embedded member on free ports in a temporary directory.
func startEtcd(t *testing.T) *Embedded {
	t.Helper()
	return startEtcdIn(t, t.TempDir())
}

func startEtcdIn(t *testing.T, dir string) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbedConfig{
		Dir:       dir,
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func dialT(t *testing.T, e *Embedded) *clientv3.Client {
	t.Helper()
	cli, err := Dial(e.Endpoints())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func openStoreT(t *testing.T, cli *clientv3.Client) *Store {
	t.Helper()
	s, err := OpenStore(testCtx(t), cli)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

// newStore starts a member and opens a store on it.
func newStore(t *testing.T) (*Embedded, *Store) {
	t.Helper()
	e := startEtcd(t)
	return e, openStoreT(t, dialT(t, e))
}

// testCtx is a context bounded by a deadline well inside the test timeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func watchT(t *testing.T, s *Store) *MetadataView {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return v
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits for ch to be closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func testBroker(id int32) BrokerInfo {
	return BrokerInfo{
		ID:   id,
		Rack: "rack-a",
		Endpoints: []Endpoint{
			{Listener: "PLAINTEXT", Host: "localhost", Port: 9092 + id, SecurityProtocol: "PLAINTEXT"},
		},
	}
}

// spec returns a topic with n partitions on replicas {0,1} and matching
// partition states led by broker 0.
func spec(name string, n int) (TopicSpec, []PartitionState) {
	t := TopicSpec{Name: name, ID: NewUUID(), Configs: map[string]string{"cleanup.policy": "delete"}}
	var states []PartitionState
	for range n {
		t.Replicas = append(t.Replicas, []int32{0, 1})
		states = append(states, PartitionState{Leader: 0, ISR: []int32{0, 1}})
	}
	return t, states
}

package etcd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeTCPPort returns a port that was free a moment ago (the members must
// know each other's peer URLs before any of them starts).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEmbeddedThreeMembers forms a three-member embedded cluster from an
// initial-cluster list, as three brokers do, and checks that a write through
// one member is read through another, and that the cluster keeps serving
// with one member gone.
func TestEmbeddedThreeMembers(t *testing.T) {
	var entries []string
	peers := make([]int, 3)
	for i := range peers {
		peers[i] = freeTCPPort(t)
		entries = append(entries, fmt.Sprintf("%d=http://127.0.0.1:%d", i+1, peers[i]))
	}
	initial := strings.Join(entries, ",")
	members := make([]*Embedded, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			members[i], errs[i] = StartEmbedded(ctx, EmbedConfig{
				Dir:            t.TempDir(),
				ClientURL:      "http://127.0.0.1:0",
				PeerURL:        fmt.Sprintf("http://127.0.0.1:%d", peers[i]),
				Name:           fmt.Sprint(i + 1),
				InitialCluster: initial,
				Logger:         testLogger(),
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		t.Cleanup(func() { members[i].Close() })
	}
	a, b := dialT(t, members[0]), dialT(t, members[2])
	ctx := testCtx(t)
	if _, err := a.Put(ctx, "/probe", "hello"); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Get(ctx, "/probe")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello" {
		t.Fatalf("read through member 3: %v %v", resp, err)
	}
	members[1].Close()
	if _, err := b.Put(ctx, "/probe", "still"); err != nil {
		t.Fatalf("write with one member down: %v", err)
	}
	if _, err := StartEmbedded(ctx, EmbedConfig{Dir: t.TempDir(), Name: "9", InitialCluster: initial}); err == nil {
		t.Fatal("a member missing from the initial cluster started")
	}
}

package etcd

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUUID(t *testing.T) {
	t.Parallel()
	seen := map[[16]byte]bool{}
	for range 1000 {
		u := NewUUID()
		s := FormatUUID(u)
		if len(s) != 22 || s[0] == '-' || strings.ContainsAny(s, "+/=") {
			t.Fatalf("FormatUUID = %q", s)
		}
		back, err := ParseUUID(s)
		if err != nil || back != u {
			t.Fatalf("ParseUUID(%q) = %x, %v; want %x", s, back, err, u)
		}
		if seen[u] {
			t.Fatalf("duplicate uuid %s", s)
		}
		seen[u] = true
	}
	for _, bad := range []string{"", "abc", "AAAAAAAAAAAAAAAAAAAAAAAA", "!!!!!!!!!!!!!!!!!!!!!!"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
}

func TestOpenStoreAgreesOnClusterID(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		cli := dialT(t, e)
		wg.Go(func() {
			s, err := OpenStore(testCtx(t), cli)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.ClusterID()
		})
	}
	wg.Wait()
	if _, err := ParseUUID(ids[0]); err != nil {
		t.Fatalf("cluster id %q: %v", ids[0], err)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("stores disagree on the cluster id: %v", ids)
		}
	}
	s := openStoreT(t, dialT(t, e))
	if s.ClusterID() != ids[0] || s.prefix != "/kbroker/"+ids[0]+"/" {
		t.Fatalf("reopened store: id %q prefix %q", s.ClusterID(), s.prefix)
	}

	// A value that is not a cluster id is refused, not silently used.
	cli := dialT(t, e)
	if _, err := cli.Put(testCtx(t), ClusterIDKey, "not-an-id"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(testCtx(t), cli); err == nil {
		t.Fatal("OpenStore accepted a malformed cluster id")
	}
}

func TestRegisterBroker(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)

	reg, err := s.RegisterBroker(ctx, testBroker(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, reg.Epoch()); err != nil {
		t.Fatal(err)
	}
	got, ok := v.Image().Brokers[1]
	if !ok {
		t.Fatalf("broker 1 not in image: %+v", v.Image().Brokers)
	}
	want := testBroker(1)
	if got.Rack != want.Rack || !slices.Equal(got.Endpoints, want.Endpoints) || got.Incarnation == "" || got.Epoch != reg.Epoch() {
		t.Fatalf("image broker = %+v, want %+v with epoch %d", got, want, reg.Epoch())
	}
	ttl, err := s.cli.TimeToLive(ctx, reg.Session().Lease())
	if err != nil || ttl.GrantedTTL != 9 {
		t.Fatalf("lease TTL = %+v, %v; want 9 s (broker.session.timeout.ms default)", ttl, err)
	}

	// Same id, another live lease: refused, and the first stays registered.
	_, err = s.RegisterBroker(ctx, testBroker(1), 2*time.Second)
	if !errors.Is(err, ErrBrokerIDInUse) || !strings.Contains(err.Error(), got.Incarnation) {
		t.Fatalf("second registration: %v", err)
	}
	reg2, err := s.RegisterBroker(ctx, testBroker(2), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if reg2.Epoch() <= reg.Epoch() {
		t.Fatalf("epochs %d then %d, want increasing", reg.Epoch(), reg2.Epoch())
	}
	waitFor(t, "brokers 1 and 2 in the image", func() bool { return len(v.Image().Brokers) == 2 })

	// Clean shutdown removes the key at once and frees the id.
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after Close", reg.Lost())
	waitFor(t, "broker 1 gone", func() bool { _, ok := v.Image().Brokers[1]; return !ok })
	reg3, err := s.RegisterBroker(ctx, testBroker(1), 2*time.Second)
	if err != nil {
		t.Fatalf("re-register after Close: %v", err)
	}
	if reg3.Epoch() <= reg2.Epoch() {
		t.Fatalf("re-registration epoch %d not above %d", reg3.Epoch(), reg2.Epoch())
	}
}

func TestRegistrationLeaseRevoked(t *testing.T) {
	t.Parallel()
	e, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)
	reg, err := s.RegisterBroker(ctx, testBroker(3), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "broker 3 registered", func() bool { _, ok := v.Image().Brokers[3]; return ok })
	// Another client revokes the lease (what expiry does, without waiting).
	if _, err := dialT(t, e).Revoke(ctx, reg.Session().Lease()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after revoke", reg.Lost())
	waitFor(t, "broker 3 gone from the image", func() bool { _, ok := v.Image().Brokers[3]; return !ok })
}

func TestRegistrationLeaseExpires(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)
	reg, err := s.RegisterBroker(ctx, testBroker(4), time.Millisecond) // rounds up to the 2 s minimum
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "broker 4 registered", func() bool { _, ok := v.Image().Brokers[4]; return ok })
	// Stop the keep-alives as a hung or partitioned broker would.
	reg.Session().Orphan()
	start := time.Now()
	waitFor(t, "broker 4 expired", func() bool { _, ok := v.Image().Brokers[4]; return !ok })
	if d := time.Since(start); d < time.Second {
		t.Fatalf("lease expired after %v, before its TTL", d)
	}
	get, err := s.cli.Get(ctx, s.brokerKey(4))
	if err != nil || len(get.Kvs) != 0 {
		t.Fatalf("broker key after expiry: %v, %v", get, err)
	}
}

func TestLeaseSeconds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   time.Duration
		want int
	}{{0, 9}, {9000 * time.Millisecond, 9}, {9001 * time.Millisecond, 10}, {time.Millisecond, 2}, {2 * time.Second, 2}, {18 * time.Second, 18}} {
		if got := leaseSeconds(c.in); got != c.want {
			t.Errorf("leaseSeconds(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestAllocateBrokerID(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	for want := int32(1001); want < 1004; want++ {
		id, err := s.AllocateBrokerID(testCtx(t))
		if err != nil || id != want {
			t.Fatalf("AllocateBrokerID = %d, %v; want %d", id, err, want)
		}
	}
}

func TestProducerIDBlocksNeverOverlap(t *testing.T) {
	t.Parallel()
	e, s1 := newStore(t)
	s2 := openStoreT(t, dialT(t, e)) // a second broker, its own connection
	const perAllocator = 40
	var (
		mu     sync.Mutex
		firsts []int64
		wg     sync.WaitGroup
	)
	for _, s := range []*Store{s1, s2} {
		wg.Go(func() {
			for range perAllocator {
				first, err := s.AllocateProducerIDBlock(testCtx(t), DefaultProducerIDBlockSize)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				firsts = append(firsts, first)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(firsts)
	if len(firsts) != 2*perAllocator {
		t.Fatalf("got %d blocks", len(firsts))
	}
	for i, f := range firsts {
		if f != int64(i)*DefaultProducerIDBlockSize {
			t.Fatalf("block %d starts at %d: blocks overlap or leave gaps: %v", i, f, firsts)
		}
	}
	if _, err := s1.AllocateProducerIDBlock(testCtx(t), 0); err == nil {
		t.Fatal("block size 0 accepted")
	}
}

func TestSetShuttingDown(t *testing.T) {
	t.Parallel()
	e, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)
	reg, err := s.RegisterBroker(ctx, testBroker(5), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := reg.SetShuttingDown(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	got := v.Image().Brokers[5]
	if !got.ShuttingDown || got.Epoch != reg.Epoch() || got.Incarnation == "" || len(got.Endpoints) != 1 {
		t.Fatalf("after SetShuttingDown: %+v (epoch %d)", got, reg.Epoch())
	}
	// Still bound to the lease: revoking it removes the key.
	if _, err := dialT(t, e).Revoke(ctx, reg.Session().Lease()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "broker 5 gone", func() bool { _, ok := v.Image().Brokers[5]; return !ok })
	// A registration whose key is gone cannot resurrect it.
	if _, err := reg.SetShuttingDown(ctx); err == nil {
		t.Fatal("SetShuttingDown after the lease was revoked succeeded")
	}
	get, err := s.cli.Get(ctx, s.brokerKey(5))
	if err != nil || len(get.Kvs) != 0 {
		t.Fatalf("broker key after failed SetShuttingDown: %v, %v", get, err)
	}
}

package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

const testNode = 3

// addrBook is the metadata image's broker endpoints, changeable mid-test;
// it records when it was asked.
type addrBook struct {
	mu      sync.Mutex
	addrs   map[int32]string
	lookups []time.Time
}

func (a *addrBook) set(id int32, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addrs[id] = addr
}

func (a *addrBook) lookup(id int32) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups = append(a.lookups, time.Now())
	addr, ok := a.addrs[id]
	return addr, ok
}

func (a *addrBook) lookupTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.lookups)
}

// testLogWriter sends log lines to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// newTestManager starts a Manager with short timings, closed at cleanup.
func newTestManager(t *testing.T, book *addrBook, edit func(*Config)) *Manager {
	t.Helper()
	cfg := Config{
		NodeID:            testNode,
		BrokerEpoch:       func() int64 { return 77 },
		PartitionMaxBytes: 4096,
		MaxWait:           50 * time.Millisecond,
		Backoff:           100 * time.Millisecond,
		RequestTimeout:    2 * time.Second,
		Address:           book.lookup,
		Logger:            slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if edit != nil {
		edit(&cfg)
	}
	m := NewManager(cfg)
	t.Cleanup(m.Close)
	return m
}

// book returns an addrBook holding the leaders by ID.
func book(leaders map[int32]*fakeLeader) *addrBook {
	b := &addrBook{addrs: map[int32]string{}}
	for id, l := range leaders {
		b.addrs[id] = l.addr()
	}
	return b
}

// recs makes consecutive single-record batches from start, all of epoch.
func recs(start, end int64, epoch int32) []rec {
	var out []rec
	for o := start; o < end; o++ {
		out = append(out, rec{offset: o, epoch: epoch})
	}
	return out
}

// waitFetches waits until the leader has served n more fetches of the
// partition than it had when called: proof the fetcher went round.
func waitFetches(t *testing.T, l *fakeLeader, topic string, partition int32, n int) {
	t.Helper()
	base := l.fetchCount(topic, partition)
	waitFor(t, fmt.Sprintf("%d more fetches of %s-%d", n, topic, partition), func() bool {
		return l.fetchCount(topic, partition) >= base+n
	})
}

func TestAppendsInOrderWithHighWatermark(t *testing.T) {
	for _, fetchMax := range []int16{18, 12} {
		t.Run(fmt.Sprintf("fetch v%d", fetchMax), func(t *testing.T) {
			leader := newFakeLeader(t, fetchMax)
			want := append(recs(0, 5, 1), recs(5, 10, 2)...)
			r := newFakeReplica("t", 0, 2)
			leader.setLog("t", r.id, 0, &leaderLog{
				recs: want, epochs: []epochEntry{{1, 0}, {2, 5}}, epoch: 2,
				hw: 8, perFetch: 3, partial: true,
			})
			var lag atomic.Int64
			lag.Store(-1)
			m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), func(c *Config) {
				c.OnLag = func(topic string, partition int32, l int64) {
					if topic == "t" && partition == 0 {
						lag.Store(l)
					}
				}
			})
			m.Follow(1, r)

			// The log arrives whole, in order; the high watermark follows
			// the leader's, not the log end.
			waitFor(t, "log end 10 with high watermark 8", func() bool {
				leo, hw, _ := r.state()
				return leo == 10 && hw == 8
			})
			// The high watermark moves with no new records.
			leader.update("t", 0, func(l *leaderLog) { l.hw = -1 })
			waitCaughtUp(t, r, 10)
			if _, _, got := r.state(); !slices.Equal(got, want) {
				t.Fatalf("follower log %v, want %v", got, want)
			}
			waitFor(t, "lag 0", func() bool { return lag.Load() == 0 })

			waitFetches(t, leader, "t", 0, 1)
			req := leader.lastRequest()
			if v := req.Version; v != fetchMax {
				t.Fatalf("fetch v%d, want v%d", v, fetchMax)
			}
			if req.Version >= 15 {
				if req.ReplicaState.ID != testNode || req.ReplicaState.Epoch != 77 {
					t.Fatalf("replica state %+v, want id %d epoch 77", req.ReplicaState, testNode)
				}
			} else if req.ReplicaID != testNode {
				t.Fatalf("replica ID %d, want %d", req.ReplicaID, testNode)
			}
			if req.SessionID != 0 || req.SessionEpoch != -1 || req.IsolationLevel != 0 || req.MaxWaitMillis != 50 || req.MinBytes != 1 {
				t.Fatalf("request session %d/%d isolation %d wait %d min %d", req.SessionID, req.SessionEpoch, req.IsolationLevel, req.MaxWaitMillis, req.MinBytes)
			}
			if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 {
				t.Fatalf("request topics %+v", req.Topics)
			}
			rt := req.Topics[0]
			if req.Version >= 13 && rt.TopicID != r.id || req.Version < 13 && rt.Topic != "t" {
				t.Fatalf("request topic %q / %x", rt.Topic, rt.TopicID)
			}
			p := rt.Partitions[0]
			if p.FetchOffset != 10 || p.LastFetchedEpoch != 2 || p.CurrentLeaderEpoch != 2 || p.PartitionMaxBytes != 4096 {
				t.Fatalf("request partition %+v", p)
			}
		})
	}
}

func TestDivergingEpochTruncation(t *testing.T) {
	cases := []struct {
		name           string
		leader         []rec
		leaderEpochs   []epochEntry
		follower       []rec
		followerEpochs []epochEntry
		truncations    []string
	}{{
		// The follower has epoch 0 too: it cuts at the smaller end of it.
		name:           "follower knows the epoch",
		leader:         append(recs(0, 5, 0), recs(5, 10, 2)...),
		leaderEpochs:   []epochEntry{{0, 0}, {2, 5}},
		follower:       append(recs(0, 5, 0), recs(5, 8, 1)...),
		followerEpochs: []epochEntry{{0, 0}, {1, 5}},
		truncations:    []string{"truncate 5"},
	}, {
		// The leader answers epoch 2, which the follower never had: it
		// cuts at the end of its own earlier epoch, then asks again.
		name:           "follower knows only an earlier epoch",
		leader:         append(append(recs(0, 3, 0), recs(3, 6, 2)...), recs(6, 8, 4)...),
		leaderEpochs:   []epochEntry{{0, 0}, {2, 3}, {4, 6}},
		follower:       append(recs(0, 4, 0), recs(4, 6, 3)...),
		followerEpochs: []epochEntry{{0, 0}, {3, 4}},
		truncations:    []string{"truncate 4", "truncate 3"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leader := newFakeLeader(t, 18)
			r := newFakeReplica("t", 0, 4).withLog(tc.follower, tc.followerEpochs)
			leader.setLog("t", r.id, 0, &leaderLog{recs: tc.leader, epochs: tc.leaderEpochs, epoch: 4, hw: -1})
			m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
			m.Follow(1, r)
			waitCaughtUp(t, r, int64(len(tc.leader)))
			if _, _, got := r.state(); !slices.Equal(got, tc.leader) {
				t.Fatalf("follower log %v, want %v", got, tc.leader)
			}
			if got := r.truncations(); !slices.Equal(got, tc.truncations) {
				t.Fatalf("truncations %v, want %v", got, tc.truncations)
			}
		})
	}
}

func TestDivergingTruncationRule(t *testing.T) {
	cases := []struct {
		name                string
		divEpoch, localEp   int32
		divEnd, localEnd, l int64
		want                int64
	}{
		{"same epoch, leader ends first", 3, 3, 100, 120, 150, 100},
		{"same epoch, follower ends first", 3, 3, 100, 90, 150, 90},
		{"earlier local epoch", 3, 2, 100, 80, 150, 80},
		{"earlier local epoch ending later", 3, 2, 100, 120, 150, 120},
		{"no local epoch", 3, -1, 100, -1, 150, 100},
		{"no local epoch, short log", 3, -1, 200, -1, 150, 150},
		{"bounded by the log end", 3, 3, 100, 120, 50, 50},
		{"leader names no offset", 3, 3, -1, 120, 150, 150},
	}
	for _, tc := range cases {
		if got := divergingTruncation(tc.divEpoch, tc.divEnd, tc.localEp, tc.localEnd, tc.l); got != tc.want {
			t.Errorf("%s: truncate to %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestOffsetOutOfRange(t *testing.T) {
	t.Run("follower ahead of the leader", func(t *testing.T) {
		leader := newFakeLeader(t, 18)
		// No epochs on the follower: the leader cannot tell divergence and
		// answers OFFSET_OUT_OF_RANGE, as after an unclean election.
		r := newFakeReplica("t", 0, 1).withLog(recs(0, 8, 0), nil)
		leader.setLog("t", r.id, 0, &leaderLog{recs: recs(0, 5, 1), epochs: []epochEntry{{1, 0}}, epoch: 1, hw: -1})
		m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
		m.Follow(1, r)
		waitCaughtUp(t, r, 5)
		leader.update("t", 0, func(l *leaderLog) { l.recs = append(l.recs, recs(5, 7, 1)...) })
		waitCaughtUp(t, r, 7)
		if got, want := r.truncations(), []string{"truncate 5"}; !slices.Equal(got, want) {
			t.Fatalf("truncations %v, want %v", got, want)
		}
		if _, _, got := r.state(); !slices.Equal(got, append(recs(0, 5, 0), recs(5, 7, 1)...)) {
			t.Fatalf("follower log %v", got)
		}
	})
	t.Run("follower behind the leader's log start", func(t *testing.T) {
		leader := newFakeLeader(t, 18)
		r := newFakeReplica("t", 0, 1)
		leader.setLog("t", r.id, 0, &leaderLog{recs: recs(10, 15, 1), logStart: 10, epochs: []epochEntry{{1, 10}}, epoch: 1, hw: -1})
		m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
		m.Follow(1, r)
		waitCaughtUp(t, r, 15)
		if got, want := r.truncations(), []string{"restart 10"}; !slices.Equal(got, want) {
			t.Fatalf("truncations %v, want %v", got, want)
		}
		if _, _, got := r.state(); !slices.Equal(got, recs(10, 15, 1)) {
			t.Fatalf("follower log %v", got)
		}
	})
}

func TestLeaderDownBacksOffThenRecovers(t *testing.T) {
	// An address nobody listens on: connections are refused at once, so
	// without a backoff the fetcher would spin.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	const backoff = 150 * time.Millisecond
	b := &addrBook{addrs: map[int32]string{1: dead}}
	m := newTestManager(t, b, func(c *Config) { c.Backoff = backoff })
	r := newFakeReplica("t", 0, 0)
	m.Follow(1, r)
	waitFor(t, "four attempts", func() bool { return len(b.lookupTimes()) >= 4 })
	times := b.lookupTimes()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < backoff*9/10 {
			t.Fatalf("attempt %d came %v after the previous one, want >= %v", i, gap, backoff)
		}
	}

	leader := newFakeLeader(t, 18)
	leader.setLog("t", r.id, 0, &leaderLog{recs: recs(0, 6, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	b.set(1, leader.addr())
	waitCaughtUp(t, r, 6)
}

func TestPartitionErrorBacksOffOnlyThatPartition(t *testing.T) {
	leader := newFakeLeader(t, 18)
	good := newFakeReplica("t", 0, 0)
	bad := newFakeReplica("t", 1, 0)
	leader.setLog("t", good.id, 0, &leaderLog{recs: recs(0, 5, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	leader.setLog("t", bad.id, 1, &leaderLog{recs: recs(0, 3, 0), epochs: []epochEntry{{0, 0}}, hw: -1, errCode: kerr.NotLeaderForPartition.Code})
	const backoff = 200 * time.Millisecond
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), func(c *Config) { c.Backoff = backoff })
	m.Follow(1, good)
	m.Follow(1, bad)
	waitCaughtUp(t, good, 5)

	// While the good partition goes round 15 times (a 50 ms long poll
	// each), the failing one is asked about once per backoff.
	start, before := time.Now(), leader.fetchCount("t", 1)
	waitFetches(t, leader, "t", 0, 15)
	elapsed, got := time.Since(start), leader.fetchCount("t", 1)-before
	if limit := int(elapsed/backoff) + 2; got > limit || got < 1 {
		t.Fatalf("failing partition fetched %d times in %v, want 1..%d", got, elapsed, limit)
	}

	leader.update("t", 1, func(l *leaderLog) { l.errCode = 0 })
	waitCaughtUp(t, bad, 3)
}

func TestFencedEpochUntilFollowerLearnsIt(t *testing.T) {
	leader := newFakeLeader(t, 18)
	r := newFakeReplica("t", 0, 1)
	leader.setLog("t", r.id, 0, &leaderLog{recs: recs(0, 4, 2), epochs: []epochEntry{{2, 0}}, epoch: 2, hw: -1})
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), func(c *Config) { c.Backoff = time.Hour })
	m.Follow(1, r)
	// Epoch 1 is fenced: the partition waits for the metadata to move on.
	waitFetches(t, leader, "t", 0, 1)
	if n := r.callCount(); n != 0 {
		t.Fatalf("fenced partition got %d calls", n)
	}
	// The new epoch arrives with a Follow, which ends the (hour-long)
	// backoff.
	r.mu.Lock()
	r.leaderEpoch = 2
	r.mu.Unlock()
	m.Follow(1, r)
	waitCaughtUp(t, r, 4)
}

func TestStaleResponseIsNotApplied(t *testing.T) {
	leader := newFakeLeader(t, 18)
	r := newFakeReplica("t", 0, 0).withLog(recs(0, 3, 0), []epochEntry{{0, 0}})
	leader.setLog("t", r.id, 0, &leaderLog{recs: recs(0, 6, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	held, release := leader.holdNext()
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
	m.Follow(1, r)
	select {
	case <-held: // the answer for offsets 3..5 is on its way
	case <-time.After(5 * time.Second):
		t.Fatal("no fetch reached the leader")
	}
	// The log moves under the fetch (as a truncation would): the answer
	// no longer fits the log and must be dropped, not appended at 1.
	if err := r.TruncateTo(1); err != nil {
		t.Fatal(err)
	}
	release()
	waitCaughtUp(t, r, 6)
	if _, _, got := r.state(); !slices.Equal(got, recs(0, 6, 0)) {
		t.Fatalf("follower log %v", got)
	}
}

func TestUnfollowWaitsForApplyThenStops(t *testing.T) {
	leader := newFakeLeader(t, 18)
	r0 := newFakeReplica("t", 0, 0)
	r1 := newFakeReplica("t", 1, 0)
	r0.gate, r0.entered = make(chan struct{}), make(chan struct{}, 1)
	leader.setLog("t", r0.id, 0, &leaderLog{recs: recs(0, 5, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	leader.setLog("t", r1.id, 1, &leaderLog{recs: recs(0, 3, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
	var release sync.Once
	open := func() { release.Do(func() { close(r0.gate) }) }
	t.Cleanup(open) // before the Manager closes, even if the test fails
	m.Follow(1, r0)
	m.Follow(1, r1)

	select {
	case <-r0.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no append to t-0")
	}
	done := make(chan struct{})
	go func() {
		m.Unfollow(r0)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Unfollow returned while an append was being applied")
	case <-time.After(100 * time.Millisecond):
	}
	open()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Unfollow did not return after the append finished")
	}

	fetches, calls := leader.fetchCount("t", 0), r0.callCount()
	leader.update("t", 0, func(l *leaderLog) { l.recs = append(l.recs, recs(5, 9, 0)...) })
	leader.update("t", 1, func(l *leaderLog) { l.recs = append(l.recs, recs(3, 9, 0)...) })
	waitCaughtUp(t, r1, 9)
	waitFetches(t, leader, "t", 1, 3)
	if got := leader.fetchCount("t", 0); got != fetches {
		t.Fatalf("t-0 fetched %d more times after Unfollow", got-fetches)
	}
	if got := r0.callCount(); got != calls {
		t.Fatalf("t-0 got %d more calls after Unfollow", got-calls)
	}
	// Unfollowing again, or a replica never followed, is harmless.
	m.Unfollow(r0)
	m.Unfollow(newFakeReplica("u", 0, 0))
}

func TestMoveToAnotherLeader(t *testing.T) {
	a, b := newFakeLeader(t, 18), newFakeLeader(t, 18)
	r := newFakeReplica("t", 0, 0)
	a.setLog("t", r.id, 0, &leaderLog{recs: recs(0, 5, 0), epochs: []epochEntry{{0, 0}}, epoch: 0, hw: -1})
	want := append(recs(0, 5, 0), recs(5, 8, 1)...)
	b.setLog("t", r.id, 0, &leaderLog{recs: want, epochs: []epochEntry{{0, 0}, {1, 5}}, epoch: 1, hw: -1})
	m := newTestManager(t, book(map[int32]*fakeLeader{1: a, 2: b}), nil)
	m.Follow(1, r)
	waitCaughtUp(t, r, 5)

	r.mu.Lock()
	r.leaderEpoch = 1 // what MakeFollower does before Follow
	r.mu.Unlock()
	m.Follow(2, r)
	fromA := a.fetchCount("t", 0)
	waitCaughtUp(t, r, 8)
	waitFetches(t, b, "t", 0, 3)
	if got := a.fetchCount("t", 0); got != fromA {
		t.Fatalf("old leader fetched %d more times after the move", got-fromA)
	}
	if _, _, got := r.state(); !slices.Equal(got, want) {
		t.Fatalf("follower log %v, want %v", got, want)
	}
	m.mu.Lock()
	_, oldRuns := m.mu.fetchers[1]
	m.mu.Unlock()
	if oldRuns {
		t.Fatal("the fetcher for the old leader still runs with no partitions")
	}
}

func TestAppendFailureDropsPartition(t *testing.T) {
	leader := newFakeLeader(t, 18)
	ok := newFakeReplica("t", 0, 0)
	failing := newFakeReplica("t", 1, 0)
	failing.appendErr = errors.New("replica: partition is not a follower")
	leader.setLog("t", ok.id, 0, &leaderLog{recs: recs(0, 2, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	leader.setLog("t", failing.id, 1, &leaderLog{recs: recs(0, 2, 0), epochs: []epochEntry{{0, 0}}, hw: -1})
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), nil)
	m.Follow(1, ok)
	m.Follow(1, failing)
	waitFor(t, "the failing append", func() bool { return failing.callCount() > 0 })
	fetches := leader.fetchCount("t", 1)
	leader.update("t", 0, func(l *leaderLog) { l.recs = append(l.recs, recs(2, 6, 0)...) })
	waitCaughtUp(t, ok, 6)
	waitFetches(t, leader, "t", 0, 3)
	if got := leader.fetchCount("t", 1); got != fetches {
		t.Fatalf("dropped partition fetched %d more times", got-fetches)
	}

	// Following it again resumes it.
	failing.mu.Lock()
	failing.appendErr = nil
	failing.mu.Unlock()
	m.Follow(1, failing)
	waitCaughtUp(t, failing, 2)
}

func TestCloseInterruptsLongPoll(t *testing.T) {
	leader := newFakeLeader(t, 18)
	r := newFakeReplica("t", 0, 0)
	leader.setLog("t", r.id, 0, &leaderLog{epochs: []epochEntry{{0, 0}}, hw: -1})
	m := newTestManager(t, book(map[int32]*fakeLeader{1: leader}), func(c *Config) { c.MaxWait = 10 * time.Second })
	m.Follow(1, r)
	waitFetches(t, leader, "t", 0, 1) // the first fetch is parked at the leader

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		m.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close waited for the leader's long poll")
	}
	m.Follow(1, r) // after Close: no fetcher starts
	m.mu.Lock()
	n := len(m.mu.fetchers)
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d fetchers after Close", n)
	}
}

func TestWholeBatches(t *testing.T) {
	two := encodeBatch(encodeBatch(nil, rec{offset: 0}), rec{offset: 1})
	for _, tc := range []struct {
		name string
		in   []byte
		want int
	}{
		{"empty", nil, 0},
		{"whole", two, len(two)},
		{"cut in the second batch", two[:len(two)-1], len(two) / 2},
		{"cut in the second header", two[:len(two)/2+5], len(two) / 2},
		{"only a partial batch", two[:20], 0},
	} {
		if got := len(wholeBatches(tc.in)); got != tc.want {
			t.Errorf("%s: %d bytes kept, want %d", tc.name, got, tc.want)
		}
	}
}

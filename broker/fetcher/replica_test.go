package fetcher

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeReplica is an in-memory follower log that records the calls the
// fetcher makes, with the storage rules that matter here: appends must be
// contiguous, truncation drops the epochs it cuts.
type fakeReplica struct {
	topic string
	part  int32
	id    [16]byte

	mu          sync.Mutex
	recs        []rec
	logStart    int64
	epochs      []epochEntry
	hw          int64
	leaderEpoch int32
	calls       []string
	appendErr   error
	// gate, if set, blocks AppendAsFollower until closed, after signalling
	// entered.
	gate    chan struct{}
	entered chan struct{}
}

func newFakeReplica(topic string, part int32, leaderEpoch int32) *fakeReplica {
	return &fakeReplica{topic: topic, part: part, id: [16]byte{byte(len(topic)), 1, 2, 3, byte(part)}, leaderEpoch: leaderEpoch}
}

// withLog gives the replica an initial log.
func (r *fakeReplica) withLog(recs []rec, epochs []epochEntry) *fakeReplica {
	r.recs = slices.Clone(recs)
	r.epochs = slices.Clone(epochs)
	return r
}

func (r *fakeReplica) TopicName() string     { return r.topic }
func (r *fakeReplica) PartitionIndex() int32 { return r.part }
func (r *fakeReplica) TopicUUID() [16]byte   { return r.id }

func (r *fakeReplica) leoLocked() int64 {
	if len(r.recs) == 0 {
		return r.logStart
	}
	return r.recs[len(r.recs)-1].offset + 1
}

func (r *fakeReplica) FollowerState() (int64, int32, int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := int32(-1)
	if len(r.epochs) > 0 {
		last = r.epochs[len(r.epochs)-1].epoch
	}
	return r.leoLocked(), last, r.leaderEpoch
}

func (r *fakeReplica) AppendAsFollower(batches []byte, leaderHW int64) error {
	r.mu.Lock()
	gate, entered := r.gate, r.entered
	r.mu.Unlock()
	if gate != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, err := decodeBatches(batches)
	r.calls = append(r.calls, fmt.Sprintf("append from %d n=%d hw %d", firstOffset(recs), len(recs), leaderHW))
	if err != nil {
		return err
	}
	if r.appendErr != nil {
		return r.appendErr
	}
	for _, x := range recs {
		if x.offset != r.leoLocked() {
			return fmt.Errorf("append at %d, log end %d", x.offset, r.leoLocked())
		}
		if len(r.epochs) == 0 || r.epochs[len(r.epochs)-1].epoch < x.epoch {
			r.epochs = append(r.epochs, epochEntry{x.epoch, x.offset})
		}
		r.recs = append(r.recs, x)
	}
	r.hw = max(r.hw, min(leaderHW, r.leoLocked()))
	return nil
}

func firstOffset(recs []rec) int64 {
	if len(recs) == 0 {
		return -1
	}
	return recs[0].offset
}

func (r *fakeReplica) EndOffsetForEpoch(epoch int32) (int32, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return endOffsetFor(r.epochs, epoch, r.leoLocked())
}

func (r *fakeReplica) TruncateTo(offset int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("truncate %d", offset))
	r.recs = slices.DeleteFunc(r.recs, func(x rec) bool { return x.offset >= offset })
	r.epochs = slices.DeleteFunc(r.epochs, func(e epochEntry) bool { return e.start >= offset })
	r.hw = min(r.hw, offset)
	return nil
}

func (r *fakeReplica) TruncateFullyAndStartAt(offset int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("restart %d", offset))
	r.recs, r.epochs = nil, nil
	r.logStart, r.hw = offset, offset
	return nil
}

// state returns the log end offset, high watermark and log.
func (r *fakeReplica) state() (leo, hw int64, recs []rec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leoLocked(), r.hw, slices.Clone(r.recs)
}

// truncations lists the truncate and restart calls.
func (r *fakeReplica) truncations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if c[0] != 'a' {
			out = append(out, c)
		}
	}
	return out
}

func (r *fakeReplica) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCaughtUp waits until r's log end offset and high watermark are leo.
func waitCaughtUp(t *testing.T, r *fakeReplica, leo int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s-%d to reach %d", r.topic, r.part, leo), func() bool {
		l, hw, _ := r.state()
		return l == leo && hw == leo
	})
}

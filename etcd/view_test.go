package etcd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestWaitForRevisionOutsidePrefix(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	v := watchT(t, s)
	ctx := testCtx(t)
	// A write no watch event under the prefix will report: the view must
	// still learn that the revision passed.
	resp, err := s.cli.Put(ctx, "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitForRevision(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if v.Image().Revision < resp.Header.Revision {
		t.Fatalf("image at %d, want >= %d", v.Image().Revision, resp.Header.Revision)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := v.WaitForRevision(short, resp.Header.Revision+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a future revision: %v", err)
	}
}

func TestSubscribeAndClose(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	v, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := v.Subscribe()
	defer cancel()
	select {
	case img := <-ch:
		if img != v.Image() && img.Revision > v.Image().Revision {
			t.Fatal("first image is not the current one")
		}
	default:
		t.Fatal("Subscribe did not deliver the current image at once")
	}
	reg, err := s.RegisterBroker(testCtx(t), testBroker(9), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(context.Background())
	deadline := time.After(15 * time.Second)
	for seen := false; !seen; {
		select {
		case img := <-ch:
			_, seen = img.Brokers[9]
		case <-deadline:
			t.Fatal("subscriber never saw the registration")
		}
	}

	ch2, cancel2 := v.Subscribe()
	<-ch2
	cancel2()
	if _, ok := <-ch2; ok {
		t.Fatal("cancelled subscription still open")
	}

	stop()
	waitClosed(t, "view stop", v.Done())
	for range ch { // drains, then ends because the view closed it
	}
	if err := v.WaitForRevision(context.Background(), v.Image().Revision+1); !errors.Is(err, ErrViewClosed) {
		t.Fatalf("WaitForRevision on a stopped view: %v", err)
	}
	if v.Image() == nil {
		t.Fatal("stopped view lost its image")
	}
}

// TestWatchRelistsAfterCompaction resumes a view from a revision that has
// been compacted away: it must list again and converge.
func TestWatchRelistsAfterCompaction(t *testing.T) {
	t.Parallel()
	_, s := newStore(t)
	c := campaignT(t, s, 1)
	ctx := testCtx(t)
	v := &MetadataView{store: s, progress: make(chan struct{}, 1), done: make(chan struct{})}
	v.mu.changed = make(chan struct{})
	v.mu.subs = map[int]chan *Image{}
	b, rev, err := v.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.publish(b.build(nil, rev), true)

	tspec, states := spec("late", 3)
	last, err := c.CreateTopic(ctx, tspec, states)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go v.run(runCtx, b, rev)
	if err := v.WaitForRevision(ctx, last); err != nil {
		t.Fatal(err)
	}
	if tp := v.Image().Topics["late"]; tp == nil || len(tp.Partitions) != 3 {
		t.Fatalf("after re-list: %+v", tp)
	}
	if v.Image().ControllerID != 1 {
		t.Fatalf("controller after re-list = %d", v.Image().ControllerID)
	}
}

// The builder tests feed synthetic events; no etcd needed.

const testPrefix = "/kbroker/C/"

func kv(key, val string, create, mod int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(testPrefix + key), Value: []byte(val), CreateRevision: create, ModRevision: mod}
}

func newTestBuilder() *imageBuilder {
	return newImageBuilder(testPrefix, "C", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestBuilderTopicNeedsTopicKey(t *testing.T) {
	t.Parallel()
	b := newTestBuilder()
	b.put(kv("partitions/t/0", `{"leader":1,"leader_epoch":3,"isr":[1]}`, 2, 2))
	b.put(kv("partitions/t/1", `{"leader":2,"isr":[2]}`, 3, 3))
	b.put(kv("partitions/t/7", `{"leader":2,"isr":[2]}`, 3, 3)) // beyond the assignment
	img := b.build(nil, 3)
	if len(img.Topics) != 0 || img.ControllerID != -1 || img.ClusterID != "C" {
		t.Fatalf("image without topic key: %+v", img)
	}
	id := NewUUID()
	b.put(kv("topics/t", `{"id":"`+FormatUUID(id)+`","replicas":[[1,2],[2,1],[1]]}`, 4, 4))
	img = b.build(img, 4)
	top := img.Topics["t"]
	if top == nil || len(top.Partitions) != 3 || img.TopicsByID[id] != top {
		t.Fatalf("topic = %+v", top)
	}
	if p := top.Partitions[0]; p.State.Leader != 1 || p.State.LeaderEpoch != 3 || p.ModRevision != 2 {
		t.Fatalf("partition 0 = %+v", p)
	}
	if p := top.Partitions[2]; p.State.Leader != -1 || p.State.LeaderEpoch != -1 || p.ModRevision != 0 {
		t.Fatalf("partition 2 without state = %+v", p)
	}
}

func TestBuilderCopyOnWrite(t *testing.T) {
	t.Parallel()
	b := newTestBuilder()
	b.put(kv("topics/a", `{"id":"`+FormatUUID(NewUUID())+`","replicas":[[1]]}`, 1, 1))
	b.put(kv("topics/b", `{"id":"`+FormatUUID(NewUUID())+`","replicas":[[1]]}`, 2, 2))
	b.put(kv("brokers/1", `{"id":1,"endpoints":[]}`, 3, 3))
	img1 := b.build(nil, 3)
	b.put(kv("partitions/a/0", `{"leader":1,"isr":[1]}`, 4, 4))
	img2 := b.build(img1, 4)
	if img2.Topics["b"] != img1.Topics["b"] {
		t.Error("unchanged topic was rebuilt")
	}
	if img2.Topics["a"] == img1.Topics["a"] || img1.Topics["a"].Partitions[0].State.Leader != -1 {
		t.Error("changed topic was shared or the old image was modified")
	}
	b.del(testPrefix + "topics/a")
	img3 := b.build(img2, 5)
	if img3.Topics["a"] != nil || img2.Topics["a"] == nil || len(img3.TopicsByID) != 1 {
		t.Error("delete not applied copy-on-write")
	}
	if b2 := img3.Brokers[1]; b2.Epoch != 3 || b2.ID != 1 {
		t.Errorf("broker = %+v", b2)
	}
	b.del(testPrefix + "brokers/1")
	img4 := b.build(img3, 6)
	if len(img4.Brokers) != 0 || len(img3.Brokers) != 1 {
		t.Error("broker delete not applied copy-on-write")
	}
}

func TestBuilderController(t *testing.T) {
	t.Parallel()
	b := newTestBuilder()
	b.put(kv("controller/b", "2", 9, 9))
	b.put(kv("controller/a", "1", 5, 5))
	img := b.build(nil, 9)
	if img.ControllerID != 1 || img.ControllerEpoch != 5 {
		t.Fatalf("controller = %d epoch %d", img.ControllerID, img.ControllerEpoch)
	}
	b.del(testPrefix + "controller/a")
	img = b.build(img, 10)
	if img.ControllerID != 2 || img.ControllerEpoch != 9 {
		t.Fatalf("after the leader left: controller = %d epoch %d", img.ControllerID, img.ControllerEpoch)
	}
}

func TestBuilderIgnoresGarbage(t *testing.T) {
	t.Parallel()
	b := newTestBuilder()
	for _, k := range []*mvccpb.KeyValue{
		kv("brokers/x", `{}`, 1, 1),
		kv("brokers/01", `{}`, 1, 1),
		kv("brokers/2", `not json`, 1, 1),
		kv("topics/bad", `{"id":"short","replicas":[[1]]}`, 1, 1),
		kv("partitions/t/-1", `{}`, 1, 1),
		kv("partitions/noslash", `{}`, 1, 1),
		kv("controller/z", `abc`, 1, 1),
		kv("config/topics/t", `{}`, 1, 1),
		{Key: []byte("/kbroker/other/topics/t"), Value: []byte(`{}`)},
	} {
		b.put(k)
	}
	img := b.build(nil, 1)
	if len(img.Brokers) != 0 || len(img.Topics) != 0 || img.ControllerID != -1 {
		t.Fatalf("garbage made it into the image: %+v", img)
	}
	// A good value later replaced by garbage disappears rather than
	// lingering with stale content.
	b.put(kv("brokers/3", `{"id":3}`, 2, 2))
	img = b.build(img, 2)
	b.put(kv("brokers/3", `{`, 2, 3))
	img = b.build(img, 3)
	if _, ok := img.Brokers[3]; ok {
		t.Fatal("undecodable update kept the old broker")
	}
}

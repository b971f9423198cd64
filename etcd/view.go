package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MetadataView is a broker's live copy of the cluster metadata: one
// goroutine watches the whole cluster prefix and folds the events into a new
// Image after each watch response, swapped in atomically. Readers never
// block the watcher and never see a half-applied transaction.
type MetadataView struct {
	store *Store
	img   atomic.Pointer[Image]
	// progress asks the watch goroutine for a progress notification, which
	// advances Revision past writes outside the prefix (capacity 1: requests
	// coalesce).
	progress chan struct{}
	done     chan struct{} // closed when the watch goroutine exits

	mu struct {
		sync.Mutex
		changed chan struct{} // closed and replaced on every publish
		subs    map[int]chan *Image
		nextSub int
		closed  bool
	}
}

// Watch lists the cluster prefix, builds the first Image and follows changes
// until ctx ends. If the watch breaks it resumes from the last applied
// revision; if that revision has been compacted away it lists again.
func (s *Store) Watch(ctx context.Context) (*MetadataView, error) {
	v := &MetadataView{
		store:    s,
		progress: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	v.mu.changed = make(chan struct{})
	v.mu.subs = map[int]chan *Image{}
	b, rev, err := v.list(ctx)
	if err != nil {
		return nil, err
	}
	v.publish(b.build(nil, rev), true)
	go v.run(ctx, b, rev)
	return v, nil
}

// Image returns the current snapshot; never nil. Treat it as read-only.
func (v *MetadataView) Image() *Image { return v.img.Load() }

// Done is closed when the view has stopped: its context ended or its etcd
// client was closed. The last image stays readable.
func (v *MetadataView) Done() <-chan struct{} { return v.done }

// WaitForRevision blocks until the image reflects revision rev or later, for
// example the revision a write method returned, so that the writer's next
// Metadata response shows its own change. Revisions of writes outside the
// cluster prefix are covered too, by asking etcd for a progress notification
// when no event arrives soon.
func (v *MetadataView) WaitForRevision(ctx context.Context, rev int64) error {
	delay := 20 * time.Millisecond
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		v.mu.Lock()
		changed, closed := v.mu.changed, v.mu.closed
		v.mu.Unlock()
		if v.Image().Revision >= rev {
			return nil
		}
		if closed {
			return fmt.Errorf("wait for revision %d: %w", rev, ErrViewClosed)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("etcd: wait for revision %d (at %d): %w", rev, v.Image().Revision, ctx.Err())
		case <-timer.C:
			select {
			case v.progress <- struct{}{}:
			default:
			}
			delay = 100 * time.Millisecond
			timer.Reset(delay)
		}
	}
}

// Subscribe returns a channel that holds the latest image: the current one at
// once, then each new one. A slow reader skips intermediate images (the
// channel keeps only the newest), so subscribers must reconcile against the
// whole image — e.g. create logs for every assigned partition they lack —
// rather than replay changes. The channel is closed by cancel or when the
// view stops.
func (v *MetadataView) Subscribe() (<-chan *Image, func()) {
	ch := make(chan *Image, 1)
	v.mu.Lock()
	defer v.mu.Unlock()
	ch <- v.Image()
	if v.mu.closed {
		close(ch)
		return ch, func() {}
	}
	id := v.mu.nextSub
	v.mu.nextSub++
	v.mu.subs[id] = ch
	return ch, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if c, ok := v.mu.subs[id]; ok {
			delete(v.mu.subs, id)
			close(c)
		}
	}
}

// publish installs img and wakes waiters; notify also hands it to
// subscribers (not done for progress-only revision bumps).
func (v *MetadataView) publish(img *Image, notify bool) {
	v.img.Store(img)
	v.mu.Lock()
	defer v.mu.Unlock()
	close(v.mu.changed)
	v.mu.changed = make(chan struct{})
	if !notify {
		return
	}
	for _, ch := range v.mu.subs {
		select {
		case ch <- img:
		default:
			// Replace the unread image; only publish sends, under mu, so
			// the second send cannot block.
			select {
			case <-ch:
			default:
			}
			ch <- img
		}
	}
}

func (v *MetadataView) shutdown() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mu.closed = true
	close(v.mu.changed)
	for id, ch := range v.mu.subs {
		delete(v.mu.subs, id)
		close(ch)
	}
	close(v.done)
}

// list reads the whole cluster prefix at one revision.
func (v *MetadataView) list(ctx context.Context) (*imageBuilder, int64, error) {
	s := v.store
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: list %s: %w", s.prefix, err)
	}
	b := newImageBuilder(s.prefix, s.clusterID, s.log)
	for _, kv := range resp.Kvs {
		b.put(kv)
	}
	return b, resp.Header.Revision, nil
}

// errCompacted: the revision to resume from is gone; list again.
var errCompacted = errors.New("etcd: watch revision compacted")

// run is the watch goroutine: it owns b and rev.
func (v *MetadataView) run(ctx context.Context, b *imageBuilder, rev int64) {
	defer v.shutdown()
	backoff := 50 * time.Millisecond
	for {
		err := v.follow(ctx, b, &rev)
		if ctx.Err() != nil || v.store.cli.Ctx().Err() != nil {
			return // stopped, or the client was closed under us
		}
		if errors.Is(err, errCompacted) {
			v.store.log.Info("metadata watch fell behind compaction; listing again", "err", err)
			nb, nrev, lerr := v.list(ctx)
			if lerr == nil {
				b, rev = nb, nrev
				v.publish(b.build(nil, rev), true)
				backoff = 50 * time.Millisecond
				continue
			}
			err = lerr
		} else {
			v.store.log.Warn("metadata watch interrupted; resuming", "revision", rev, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow watches from *rev+1, applying each response as one new image, until
// the watch breaks or ctx ends.
func (v *MetadataView) follow(ctx context.Context, b *imageBuilder, rev *int64) error {
	s := v.store
	// WithRequireLeader ends the watch if our etcd member loses its leader,
	// instead of silently serving a partitioned member's stale state.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(*rev+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.progress:
			// Same metadata as the watch (wctx), so it reaches its stream.
			if err := s.cli.RequestProgress(wctx); err != nil {
				s.log.Debug("request watch progress", "err", err)
			}
		case resp, ok := <-wch:
			if !ok {
				return errors.New("etcd: watch channel closed")
			}
			if resp.CompactRevision != 0 {
				return fmt.Errorf("%w: resume at %d, compacted to %d", errCompacted, *rev+1, resp.CompactRevision)
			}
			if err := resp.Err(); err != nil {
				return err
			}
			if resp.IsProgressNotify() {
				// Every event up to the header revision has been sent.
				if resp.Header.Revision > *rev {
					*rev = resp.Header.Revision
					v.publish(b.build(v.Image(), *rev), false)
				}
				continue
			}
			if len(resp.Events) == 0 {
				continue
			}
			// The header revision may run ahead of the events delivered so
			// far (a catching-up watcher gets them in batches), so the
			// image revision is the newest event's.
			for _, ev := range resp.Events {
				b.apply(ev)
				*rev = max(*rev, ev.Kv.ModRevision)
			}
			v.publish(b.build(v.Image(), *rev), true)
		}
	}
}

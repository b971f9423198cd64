package storage

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kbroker/kbroker/protocol/batch"
)

// TestConcurrentReadersDuringAppends runs readers against a log that keeps
// appending and rolling; run it with -race.
func TestConcurrentReadersDuringAppends(t *testing.T) {
	cfg := testCfg()
	cfg.SegmentBytes = 1024
	l := openLog(t, t.TempDir(), cfg, true, Options{})
	var (
		done     atomic.Bool
		wg       sync.WaitGroup
		reads    atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
	)
	report := func(err error) { errOnce.Do(func() { firstErr = err; failed.Store(true) }) }
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed))
			for !done.Load() {
				leo := l.LogEndOffset()
				if leo == 0 {
					continue
				}
				off := rng.Int64N(leo)
				res, err := l.Read(off, 1+rng.IntN(3000), leo)
				if err != nil {
					report(err)
					return
				}
				b, err := res.ReadAll()
				res.Release()
				if err != nil {
					report(err)
					return
				}
				hs, err := batch.Validate(b, 1<<20)
				if err != nil || len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
					report(errors.New("read returned the wrong batches"))
					return
				}
				if rng.IntN(8) == 0 {
					if _, _, _, err := l.OffsetForTimestamp(rng.Int64N(leo * 100)); err != nil {
						report(err)
						return
					}
					l.MaxTimestamp()
				}
				reads.Add(1)
			}
		}(uint64(w + 1))
	}
	for i := 0; i < 300; i++ {
		b := makeBatch(t, l.LogEndOffset(), batch.Codec(i%5%3), 0, recsAt(1+i%3, int64(i)*100, 30))
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "readers to make progress", func() bool { return reads.Load() > 100 || failed.Load() })
	done.Store(true)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if len(l.segs) < 10 {
		t.Fatalf("only %d segments: the test did not exercise rolls", len(l.segs))
	}
}

func TestReadResultOutlivesDeletion(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testCfg(), true, Options{})
	all := appendN(t, l, 60, 3, batch.CodecNone, 0)
	if len(l.segs) < 3 {
		t.Fatalf("%d segments", len(l.segs))
	}
	first, err := l.Read(0, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	last, err := l.Read(l.LogEndOffset()-1, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	copyOfFirst := first // copies share the handle

	// Retention removes the first segment while a reader holds it.
	if err := l.SetLogStartOffset(l.segs[1].base); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.segs[0].logPath); err != nil {
		t.Fatal(err)
	}
	got, err := first.ReadAll()
	if err != nil || string(got) != string(all[:len(got)]) {
		t.Fatalf("read from a retired segment: %v", err)
	}
	// Deleting the whole log leaves open results readable.
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there: %v", err)
	}
	got, err = last.ReadAll()
	if err != nil || string(got) != string(all[len(all)-len(got):]) {
		t.Fatalf("read after Delete: %v", err)
	}
	// sendfile would use the descriptor directly: it must still be open.
	if _, err := last.File.Stat(); err != nil {
		t.Fatalf("file closed while referenced: %v", err)
	}
	buf := make([]byte, 10)
	if _, err := last.Section().ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	first.Release()
	copyOfFirst.Release() // idempotent across copies
	f := last.File
	last.Release()
	if _, err := f.Stat(); err == nil {
		t.Fatal("file still open after the last release")
	}
	if _, err := l.Read(0, 10, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := l.Append(makeBatch(t, 0, batch.CodecNone, 0, recsAt(1, 0, 1))); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
}

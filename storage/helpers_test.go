package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// rec is one record for makeBatch.
type rec struct {
	ts         int64
	key, value []byte
}

// makeBatch encodes a v2 batch with kmsg (an encoder independent of the
// code under test), compressing its records with codec.
func makeBatch(t testing.TB, base int64, codec batch.Codec, epoch int32, recs []rec) []byte {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("makeBatch needs records")
	}
	first, maxTS := recs[0].ts, recs[0].ts
	var raw []byte
	for i, r := range recs {
		maxTS = max(maxTS, r.ts)
		kr := kmsg.Record{TimestampDelta64: r.ts - first, OffsetDelta: int32(i), Key: r.key, Value: r.value}
		body := kr.AppendTo(nil)[1:]
		kr.Length = int32(len(body))
		raw = kr.AppendTo(raw)
	}
	section := raw
	if codec != batch.CodecNone {
		var err error
		if section, err = batch.Compress(codec, raw); err != nil {
			t.Fatal(err)
		}
	}
	kb := kmsg.RecordBatch{
		FirstOffset: base, Length: int32(49 + len(section)), PartitionLeaderEpoch: epoch, Magic: 2,
		Attributes: int16(codec), LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: first,
		MaxTimestamp: maxTS, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(recs)), Records: section,
	}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// recsAt returns n records with timestamps ts, ts+1, ... and small values.
func recsAt(n int, ts int64, valueSize int) []rec {
	out := make([]rec, n)
	for i := range out {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		out[i] = rec{ts: ts + int64(i), key: []byte{byte(i)}, value: v}
	}
	return out
}

// testCfg is a config with small segments and dense indexes.
func testCfg() LogConfig {
	c := NewLogConfig()
	c.SegmentBytes = 4096
	c.IndexIntervalBytes = 256
	return c
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), substr)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(b *logBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openLog opens a Log and closes it at the end of the test.
func openLog(t testing.TB, dir string, cfg LogConfig, clean bool, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := Open(dir, cfg, clean, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// appendN appends n single-batch appends of recsPer records each and
// returns the concatenation of everything appended.
func appendN(t *testing.T, l *Log, n, recsPer int, codec batch.Codec, tsStart int64) []byte {
	t.Helper()
	var all []byte
	for i := 0; i < n; i++ {
		b := makeBatch(t, l.LogEndOffset(), codec, 0, recsAt(recsPer, tsStart+int64(i)*100, 20+i%50))
		if err := l.Append(b); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		all = append(all, b...)
	}
	return all
}

// readAll reads the whole log with reads of maxBytes and returns the bytes.
func readAll(t *testing.T, l *Log, maxBytes int) []byte {
	t.Helper()
	var out []byte
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		res, err := l.Read(off, maxBytes, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if res.Size == 0 {
			t.Fatalf("empty read at %d below log end %d", off, l.LogEndOffset())
		}
		b, err := res.ReadAll()
		res.Release()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := batch.Validate(b, 1<<30)
		if err != nil {
			t.Fatalf("read at %d returned invalid batches: %v", off, err)
		}
		if hs[0].LastOffset() < off || hs[0].BaseOffset > off {
			t.Fatalf("read at %d starts with batch %d-%d", off, hs[0].BaseOffset, hs[0].LastOffset())
		}
		out = append(out, b...)
		off = hs[len(hs)-1].NextOffset()
	}
	return out
}

// testFS is the OS filesystem with fault injection and crash simulation: it
// remembers how many bytes of each file were synced, and crash cuts every
// file back to that.
type testFS struct {
	OSFS
	mu     sync.Mutex
	synced map[string]int64
	syncs  map[string]int
	fault  func(op, path string) error
}

func newTestFS() *testFS {
	return &testFS{synced: map[string]int64{}, syncs: map[string]int{}}
}

func (f *testFS) inject(op, path string) error {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault != nil {
		return fault(op, path)
	}
	return nil
}

func (f *testFS) setFault(fn func(op, path string) error) {
	f.mu.Lock()
	f.fault = fn
	f.mu.Unlock()
}

func (f *testFS) syncCount(suffix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for p, c := range f.syncs {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

func (f *testFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.inject("open", name); err != nil {
		return nil, err
	}
	st, statErr := os.Stat(name)
	of, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if _, ok := f.synced[name]; !ok || flag&os.O_TRUNC != 0 {
		if statErr == nil && flag&os.O_TRUNC == 0 {
			f.synced[name] = st.Size() // existed before: durable
		} else {
			f.synced[name] = 0
		}
	}
	f.mu.Unlock()
	return &testFile{File: of, fs: f, path: name}, nil
}

func (f *testFS) Rename(oldpath, newpath string) error {
	if err := f.inject("rename", oldpath); err != nil {
		return err
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	f.mu.Lock()
	f.synced[newpath] = f.synced[oldpath]
	delete(f.synced, oldpath)
	f.mu.Unlock()
	return nil
}

func (f *testFS) Remove(name string) error {
	f.mu.Lock()
	delete(f.synced, name)
	f.mu.Unlock()
	return os.Remove(name)
}

func (f *testFS) RemoveAll(path string) error {
	f.mu.Lock()
	for p := range f.synced {
		if strings.HasPrefix(p, path) {
			delete(f.synced, p)
		}
	}
	f.mu.Unlock()
	return os.RemoveAll(path)
}

func (f *testFS) SyncDir(name string) error {
	if err := f.inject("syncdir", name); err != nil {
		return err
	}
	return OSFS{}.SyncDir(name)
}

// crash drops every byte written since the file's last sync.
func (f *testFS) crash(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, n := range f.synced {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > n {
			if err := os.Truncate(p, n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type testFile struct {
	*os.File
	fs   *testFS
	path string
}

func (f *testFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.inject("write", f.path); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *testFile) Sync() error {
	if err := f.fs.inject("sync", f.path); err != nil {
		return err
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	st, err := f.File.Stat()
	if err != nil {
		return err
	}
	f.fs.mu.Lock()
	f.fs.synced[f.path] = st.Size()
	f.fs.syncs[f.path]++
	f.fs.mu.Unlock()
	return nil
}

func (f *testFile) Truncate(size int64) error {
	if err := f.fs.inject("truncate", f.path); err != nil {
		return err
	}
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.fs.mu.Lock()
	f.fs.synced[f.path] = min(f.fs.synced[f.path], size)
	f.fs.mu.Unlock()
	return nil
}

// crashLog abandons l without flushing or writing indexes, as a killed
// process would, then drops the unsynced bytes.
func crashLog(t *testing.T, l *Log, fsys *testFS) {
	t.Helper()
	l.wmu.Lock()
	l.closeFiles()
	l.wmu.Unlock()
	fsys.crash(t)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

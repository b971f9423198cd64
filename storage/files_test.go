package storage

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestPartitionDirNames(t *testing.T) {
	if got := PartitionDirName("my.topic_1", 12); got != "my.topic_1-12" {
		t.Fatalf("PartitionDirName = %q", got)
	}
	for _, tc := range []struct {
		name  string
		topic string
		part  int32
		ok    bool
	}{
		{"orders-0", "orders", 0, true},
		{"a-b-c-17", "a-b-c", 17, true},
		{"x-2147483647", "x", 2147483647, true},
		{"x-2147483648", "", 0, false},
		{"-3", "", 0, false},
		{"orders-", "", 0, false},
		{"orders", "", 0, false},
		{"orders--1", "orders-", 1, true}, // topic "orders-"
		{"orders-+1", "", 0, false},
		{"orders-1.0123abcd-delete", "", 0, false},
		{"orders-1-future", "", 0, false},
		{"orders-1-stray", "", 0, false},
	} {
		topic, part, ok := ParsePartitionDirName(tc.name)
		if topic != tc.topic || part != tc.part || ok != tc.ok {
			t.Errorf("ParsePartitionDirName(%q) = %q, %d, %v", tc.name, topic, part, ok)
		}
	}
}

func TestPartitionMetadata(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPartitionMetadata(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	id := [16]byte{0xfb, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0xfe}
	if err := WritePartitionMetadata(dir, id); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "partition.metadata"))
	if err != nil {
		t.Fatal(err)
	}
	// Kafka's Uuid.toString: URL-safe base64 without padding.
	want := "version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(id[:]) + "\n"
	if string(raw) != want || len(want) != len("version: 0\ntopic_id: \n")+22 {
		t.Fatalf("file content %q, want %q", raw, want)
	}
	got, err := ReadPartitionMetadata(dir)
	if err != nil || got != id {
		t.Fatalf("read back %x, %v", got, err)
	}
	if err := WritePartitionMetadata(dir, [16]byte{}); err == nil {
		t.Fatal("zero topic ID accepted")
	}
	for _, bad := range []string{"", "version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n", "version: 0\ntopic_id: short\n",
		"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n", "version: 0\n"} {
		if err := os.WriteFile(filepath.Join(dir, "partition.metadata"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPartitionMetadata(dir); !errors.Is(err, ErrCorruptFile) {
			t.Errorf("content %q: %v", bad, err)
		}
	}
}

func TestCleanShutdownMarker(t *testing.T) {
	dir := t.TempDir()
	if clean, err := ConsumeCleanShutdown(dir); err != nil || clean {
		t.Fatalf("no marker: %v %v", clean, err)
	}
	if err := MarkCleanShutdown(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".kafka_cleanshutdown")); err != nil {
		t.Fatal(err)
	}
	if clean, err := ConsumeCleanShutdown(dir); err != nil || !clean {
		t.Fatalf("after marking: %v %v", clean, err)
	}
	if clean, err := ConsumeCleanShutdown(dir); err != nil || clean {
		t.Fatalf("marker must be consumed: %v %v", clean, err)
	}
}

func TestLeaderEpochCache(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadLeaderEpochCache(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if e, o := c.EndOffsetFor(0, 10); e != -1 || o != -1 {
		t.Fatalf("empty cache EndOffsetFor = %d, %d", e, o)
	}
	for _, a := range []EpochEntry{{1, 0}, {1, 5}, {3, 10}, {-1, 12}, {5, 20}} {
		if err := c.Assign(a.Epoch, a.StartOffset); err != nil {
			t.Fatal(err)
		}
	}
	want := []EpochEntry{{1, 0}, {3, 10}, {5, 20}}
	if got := c.Entries(); !equalEntries(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "leader-epoch-checkpoint"))
	if err != nil || string(raw) != "0\n3\n1 0\n3 10\n5 20\n" {
		t.Fatalf("checkpoint %q, %v", raw, err)
	}
	for _, tc := range []struct {
		epoch       int32
		wantEpoch   int32
		wantOffset  int64
		description string
	}{
		{5, 5, 99, "latest epoch: log end"},
		{3, 3, 20, "older epoch: start of the next"},
		{4, 3, 20, "unknown epoch between: previous epoch, next start"},
		{2, 1, 10, "unknown epoch between"},
		{0, 0, 0, "below every epoch: first start"},
		{6, -1, -1, "above every epoch"},
		{-1, -1, -1, "undefined"},
	} {
		if e, o := c.EndOffsetFor(tc.epoch, 99); e != tc.wantEpoch || o != tc.wantOffset {
			t.Errorf("%s: EndOffsetFor(%d) = %d, %d", tc.description, tc.epoch, e, o)
		}
	}
	for off, want := range map[int64]int32{0: 1, 9: 1, 10: 3, 19: 3, 20: 5, 1000: 5} {
		if e, ok := c.EpochForOffset(off); !ok || e != want {
			t.Errorf("EpochForOffset(%d) = %d, %v", off, e, ok)
		}
	}
	// A lower start for an older epoch drops the entries that conflict.
	if err := c.Assign(4, 15); err != nil {
		t.Fatal(err)
	}
	if got := c.Entries(); !equalEntries(got, []EpochEntry{{1, 0}, {3, 10}, {4, 15}}) {
		t.Fatalf("after non-monotonic assign: %v", got)
	}
	if err := c.TruncateFromEnd(15); err != nil {
		t.Fatal(err)
	}
	if err := c.TruncateFromStart(12); err != nil {
		t.Fatal(err)
	}
	if got := c.Entries(); !equalEntries(got, []EpochEntry{{3, 12}}) {
		t.Fatalf("after truncations: %v", got)
	}
	c2, err := LoadLeaderEpochCache(nil, dir)
	if err != nil || !equalEntries(c2.Entries(), []EpochEntry{{3, 12}}) {
		t.Fatalf("reload: %v %v", c2, err)
	}
	for _, bad := range []string{"1\n0\n", "0\n2\n1 0\n", "0\n1\nx y\n", "0\n2\n3 0\n2 5\n"} {
		if err := os.WriteFile(filepath.Join(dir, "leader-epoch-checkpoint"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLeaderEpochCache(nil, dir); !errors.Is(err, ErrCorruptFile) {
			t.Errorf("content %q: %v", bad, err)
		}
	}
}

func equalEntries(a, b []EpochEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEpochsRecoveredFromLog: a lost checkpoint is rebuilt from the epochs
// stamped on the active segment's batches during unclean recovery.
func TestEpochsRecoveredFromLog(t *testing.T) {
	dir := t.TempDir()
	fsys := newTestFS()
	l := openLog(t, dir, NewLogConfig(), true, Options{FS: fsys})
	appendEpochs(t, l, 2, 2, 7, 7, 9)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	crashLog(t, l, fsys)
	if err := os.Remove(filepath.Join(dir, LeaderEpochCheckpointFile)); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, NewLogConfig(), false, Options{})
	want := []EpochEntry{{2, 0}, {7, 4}, {9, 8}}
	if got := l2.LeaderEpochs().Entries(); !equalEntries(got, want) {
		t.Fatalf("recovered epochs %v, want %v", got, want)
	}
	// Entries past the recovered log end are dropped.
	l2.Close()
	c, _ := LoadLeaderEpochCache(nil, dir)
	if err := c.Assign(12, 500); err != nil {
		t.Fatal(err)
	}
	l3 := openLog(t, dir, NewLogConfig(), true, Options{})
	if got := l3.LeaderEpochs().Entries(); !equalEntries(got, want) {
		t.Fatalf("epochs beyond the log end kept: %v", got)
	}
}

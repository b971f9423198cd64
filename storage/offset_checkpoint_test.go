package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOffsetCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	got, err := ReadOffsetCheckpoint(dir, ReplicationOffsetCheckpointFile)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v; want empty", got, err)
	}
	want := map[TopicPartition]int64{{"orders", 10}: 42, {"orders", 2}: 7, {"__consumer_offsets", 0}: 0}
	if err := WriteOffsetCheckpoint(dir, ReplicationOffsetCheckpointFile, want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ReplicationOffsetCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	// Kafka's OffsetCheckpointFile layout: version, count, sorted entries.
	if wantText := "0\n3\n__consumer_offsets 0 0\norders 2 7\norders 10 42\n"; string(data) != wantText {
		t.Fatalf("file:\n%s\nwant:\n%s", data, wantText)
	}
	got, err = ReadOffsetCheckpoint(dir, ReplicationOffsetCheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	for tp, off := range want {
		if got[tp] != off {
			t.Errorf("%v: read %d, want %d", tp, got[tp], off)
		}
	}
}

func TestOffsetCheckpointCorrupt(t *testing.T) {
	for _, text := range []string{"", "1\n0\n", "0\n2\norders 0 1\n", "0\n1\norders x 1\n", "0\n1\norders 0\n"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ReplicationOffsetCheckpointFile), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadOffsetCheckpoint(dir, ReplicationOffsetCheckpointFile); !errors.Is(err, ErrCorruptFile) {
			t.Errorf("%q: err %v, want ErrCorruptFile", text, err)
		}
	}
}

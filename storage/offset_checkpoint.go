package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ReplicationOffsetCheckpointFile is the per-log-dir file of high
// watermarks, under Kafka's name and in its format (see the package doc).
const ReplicationOffsetCheckpointFile = "replication-offset-checkpoint"

// TopicPartition names one partition in a per-log-dir checkpoint.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ReadOffsetCheckpoint reads a per-log-dir offset checkpoint in dir. A
// missing file is an empty checkpoint; a malformed one is ErrCorruptFile
// (the caller decides whether the values can be done without).
func ReadOffsetCheckpoint(dir, name string) (map[TopicPartition]int64, error) {
	fsys := OSFS{}
	path := filepath.Join(dir, name)
	_ = removeIfExists(fsys, path+".tmp")
	data, err := readFile(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[TopicPartition]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "0" {
		return nil, fmt.Errorf("%w: %s: want version 0 and an entry count", ErrCorruptFile, path)
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("%w: %s: entry count %q does not match %d entries", ErrCorruptFile, path, lines[1], len(lines)-2)
	}
	out := make(map[TopicPartition]int64, n)
	for _, line := range lines[2:] {
		// Topic names cannot hold spaces, so each line is three fields.
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrCorruptFile, path, line)
		}
		part, perr := strconv.ParseInt(f[1], 10, 32)
		off, oerr := strconv.ParseInt(f[2], 10, 64)
		if perr != nil || oerr != nil || part < 0 {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrCorruptFile, path, line)
		}
		out[TopicPartition{f[0], int32(part)}] = off
	}
	return out, nil
}

// WriteOffsetCheckpoint atomically replaces the per-log-dir checkpoint in
// dir with offsets, one "<topic> <partition> <offset>" line each, sorted
// so that an unchanged state writes the same bytes.
func WriteOffsetCheckpoint(dir, name string, offsets map[TopicPartition]int64) error {
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(tps))
	for _, tp := range tps {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, offsets[tp])
	}
	path := filepath.Join(dir, name)
	if err := writeFileAtomic(OSFS{}, path, b.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

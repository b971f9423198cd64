package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// Per-partition checkpoint files. Kafka keeps one log-start-offset-checkpoint
// and one cleaner-offset-checkpoint per log dir, listing every partition; a
// Log here owns its directory and nothing above it, so it keeps one file of
// each in the partition directory, under Kafka's names. The byte layouts are
// in the package doc.
const (
	// LogStartOffsetCheckpointFile holds the log start offset when it is
	// above the first segment's base offset.
	LogStartOffsetCheckpointFile = "log-start-offset-checkpoint"
	// CleanerOffsetCheckpointFile holds the compaction cleaner's progress.
	CleanerOffsetCheckpointFile = "cleaner-offset-checkpoint"
)

// readCheckpointInts reads a "0\n<v1>\n<v2>..." file of want integers after
// the version line. ok=false for a missing file; a malformed one is
// ErrCorruptFile, as Kafka refuses to load a log whose checkpoint it cannot
// read rather than guess.
func readCheckpointInts(fsys FS, path string, want int) (vals []int64, ok bool, err error) {
	_ = removeIfExists(fsys, path+".tmp")
	data, err := readFile(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != want+1 || strings.TrimSpace(lines[0]) != "0" {
		return nil, false, fmt.Errorf("%w: %s: want version 0 and %d values, got %q", ErrCorruptFile, path, want, data)
	}
	for _, line := range lines[1:] {
		v, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s: bad line %q", ErrCorruptFile, path, line)
		}
		vals = append(vals, v)
	}
	return vals, true, nil
}

// writeCheckpointInts replaces path atomically with "0\n" and one value per
// line.
func writeCheckpointInts(fsys FS, path string, vals ...int64) error {
	b := []byte("0\n")
	for _, v := range vals {
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '\n')
	}
	if err := writeFileAtomic(fsys, path, b); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// persistLogStartLocked writes the log start offset checkpoint. The caller
// holds wmu; it writes before it deletes anything the new value makes
// unreachable, so that a crash in between leaves the checkpoint ahead of the
// files and Open finishes the job.
func (l *Log) persistLogStartLocked(offset int64) error {
	return writeCheckpointInts(l.fs, filepath.Join(l.dir, LogStartOffsetCheckpointFile), offset)
}

// readLogStartCheckpoint returns the persisted log start offset, or -1.
func readLogStartCheckpoint(fsys FS, dir string) (int64, error) {
	vals, ok, err := readCheckpointInts(fsys, filepath.Join(dir, LogStartOffsetCheckpointFile), 1)
	if err != nil || !ok {
		return -1, err
	}
	if vals[0] < 0 {
		return -1, fmt.Errorf("%w: %s: negative log start offset %d", ErrCorruptFile, LogStartOffsetCheckpointFile, vals[0])
	}
	return vals[0], nil
}

// cleanerCheckpoint is the cleaner's persisted progress.
type cleanerCheckpoint struct {
	// firstDirty: every record below it has been compacted against the keys
	// that followed it up to here; -1 when the log was never cleaned.
	firstDirty int64
	// deleteHorizon: the earliest delete horizon of a tombstone the cleaner
	// kept, when a run must happen even without new dirty bytes; -1 none.
	deleteHorizon int64
}

func readCleanerCheckpoint(fsys FS, dir string) (cleanerCheckpoint, error) {
	vals, ok, err := readCheckpointInts(fsys, filepath.Join(dir, CleanerOffsetCheckpointFile), 2)
	if err != nil || !ok {
		return cleanerCheckpoint{firstDirty: -1, deleteHorizon: -1}, err
	}
	return cleanerCheckpoint{firstDirty: vals[0], deleteHorizon: vals[1]}, nil
}

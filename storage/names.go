package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// File name suffixes of a segment, and the per-partition and per-log-dir
// files, as Kafka names them.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"

	// PartitionMetadataFile holds the topic ID of a partition directory.
	PartitionMetadataFile = "partition.metadata"
	// LeaderEpochCheckpointFile holds the leader epoch cache.
	LeaderEpochCheckpointFile = "leader-epoch-checkpoint"
	// CleanShutdownFile marks a log dir whose logs were all closed cleanly.
	CleanShutdownFile = ".kafka_cleanshutdown"
)

// PartitionDirName is the directory of a partition inside a log dir:
// "<topic>-<partition>".
func PartitionDirName(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// ParsePartitionDirName splits a "<topic>-<partition>" directory name at its
// last dash. It rejects an empty topic, a partition that is not a
// non-negative decimal int32, and names carrying Kafka's ".<id>-delete",
// "-future" or "-stray" suffixes (those are not live partitions).
func ParsePartitionDirName(name string) (topic string, partition int32, ok bool) {
	if strings.HasSuffix(name, "-delete") || strings.HasSuffix(name, "-future") || strings.HasSuffix(name, "-stray") {
		return "", 0, false
	}
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	digits := name[i+1:]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	p, err := strconv.ParseInt(digits, 10, 32)
	if err != nil {
		return "", 0, false
	}
	return name[:i], int32(p), true
}

// segmentName is the 20-digit, zero-padded base offset that names a
// segment's files.
func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base offset of a "<20 digits><suffix>" name.
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, found := strings.CutSuffix(name, suffix)
	if !found || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// WritePartitionMetadata writes dir/partition.metadata in Kafka's format,
// atomically:
//
//	version: 0
//	topic_id: <topic ID, base64url without padding, as Uuid.toString>
func WritePartitionMetadata(dir string, topicID [16]byte) error {
	return writePartitionMetadata(OSFS{}, dir, topicID)
}

func writePartitionMetadata(fsys FS, dir string, topicID [16]byte) error {
	if topicID == ([16]byte{}) {
		return fmt.Errorf("write partition metadata in %s: zero topic ID", dir)
	}
	data := "version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(topicID[:]) + "\n"
	if old, err := readFile(fsys, filepath.Join(dir, PartitionMetadataFile)); err == nil && string(old) == data {
		return nil // already durable: reopening a partition costs no fsync
	}
	if err := writeFileAtomic(fsys, filepath.Join(dir, PartitionMetadataFile), []byte(data)); err != nil {
		return fmt.Errorf("write partition metadata: %w", err)
	}
	return nil
}

// ReadPartitionMetadata reads the topic ID from dir/partition.metadata. A
// missing file gives an error matching fs.ErrNotExist; a malformed one
// ErrCorruptFile.
func ReadPartitionMetadata(dir string) ([16]byte, error) {
	return readPartitionMetadata(OSFS{}, dir)
}

func readPartitionMetadata(fsys FS, dir string) ([16]byte, error) {
	var id [16]byte
	path := filepath.Join(dir, PartitionMetadataFile)
	data, err := readFile(fsys, path)
	if err != nil {
		return id, fmt.Errorf("read partition metadata: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 2 {
		return id, fmt.Errorf("%w: %s: %d lines", ErrCorruptFile, path, len(lines))
	}
	version := strings.Fields(lines[0])
	if len(version) != 2 || version[0] != "version:" || version[1] != "0" {
		return id, fmt.Errorf("%w: %s: bad version line %q", ErrCorruptFile, path, lines[0])
	}
	topic := strings.Fields(lines[1])
	if len(topic) != 2 || topic[0] != "topic_id:" {
		return id, fmt.Errorf("%w: %s: bad topic_id line %q", ErrCorruptFile, path, lines[1])
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(topic[1], "="))
	if err != nil || len(raw) != 16 {
		return id, fmt.Errorf("%w: %s: bad topic ID %q", ErrCorruptFile, path, topic[1])
	}
	copy(id[:], raw)
	if id == ([16]byte{}) {
		return id, fmt.Errorf("%w: %s: zero topic ID", ErrCorruptFile, path)
	}
	return id, nil
}

// cleanShutdownContent mirrors Kafka's CleanShutdownFileHandler, which
// stores a JSON map of string values; the broker epoch is unknown here.
var cleanShutdownContent = []byte(`{"version":"0","broker_epoch":"-1"}`)

// MarkCleanShutdown writes logDir/.kafka_cleanshutdown. Call it after every
// Log in the dir was closed, as the last act of a clean shutdown.
func MarkCleanShutdown(logDir string) error {
	return markCleanShutdown(OSFS{}, logDir)
}

func markCleanShutdown(fsys FS, logDir string) error {
	if err := writeFileAtomic(fsys, filepath.Join(logDir, CleanShutdownFile), cleanShutdownContent); err != nil {
		return fmt.Errorf("mark clean shutdown: %w", err)
	}
	return nil
}

// ConsumeCleanShutdown reports whether logDir holds the clean-shutdown
// marker and removes it (durably), so that a crash during this run is not
// mistaken for a clean stop at the next start. Kafka decides by the file's
// existence; its content is not checked.
func ConsumeCleanShutdown(logDir string) (wasClean bool, err error) {
	return consumeCleanShutdown(OSFS{}, logDir)
}

func consumeCleanShutdown(fsys FS, logDir string) (bool, error) {
	path := filepath.Join(logDir, CleanShutdownFile)
	if _, err := fsys.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("consume clean shutdown: %w", err)
	}
	if err := fsys.Remove(path); err != nil {
		return false, fmt.Errorf("consume clean shutdown: %w", err)
	}
	if err := fsys.SyncDir(logDir); err != nil {
		return false, fmt.Errorf("consume clean shutdown: sync %s: %w", logDir, err)
	}
	return true, nil
}

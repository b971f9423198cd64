package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// Producer state snapshot files (Kafka's ProducerStateManager format, version
// 1), see the package doc for the layout.
const (
	snapshotSuffix     = ".snapshot"
	snapshotVersion    = 1
	snapshotHeaderSize = 2 + 4 + 4 // version, crc, entry count
	snapshotEntrySize  = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8
	// snapshotsKept is how many of the newest snapshots survive a new one.
	snapshotsKept = 2
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func snapshotPath(dir string, offset int64) string {
	return filepath.Join(dir, segmentName(offset)+snapshotSuffix)
}

// encodeSnapshot serialises the producers, by producer ID.
func encodeSnapshot(producers map[int64]*producerEntry) []byte {
	pids := make([]int64, 0, len(producers))
	for pid := range producers {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	b := make([]byte, snapshotHeaderSize+len(pids)*snapshotEntrySize)
	binary.BigEndian.PutUint16(b[0:], snapshotVersion)
	binary.BigEndian.PutUint32(b[6:], uint32(len(pids)))
	p := b[snapshotHeaderSize:]
	for _, pid := range pids {
		e := producers[pid]
		lastSeq, lastOffset, delta := int32(noSequence), int64(-1), int32(0)
		if e.n > 0 {
			m := e.batches[e.n-1]
			lastSeq, lastOffset, delta = m.lastSeq, m.lastOffset, m.offsetDelta
		}
		binary.BigEndian.PutUint64(p[0:], uint64(pid))
		binary.BigEndian.PutUint16(p[8:], uint16(e.epoch))
		binary.BigEndian.PutUint32(p[10:], uint32(lastSeq))
		binary.BigEndian.PutUint64(p[14:], uint64(lastOffset))
		binary.BigEndian.PutUint32(p[22:], uint32(delta))
		binary.BigEndian.PutUint64(p[26:], uint64(e.lastTimestamp))
		binary.BigEndian.PutUint32(p[34:], uint32(e.coordinatorEpoch))
		binary.BigEndian.PutUint64(p[38:], uint64(e.txnFirst))
		p = p[snapshotEntrySize:]
	}
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], crc32c))
	return b
}

// snapshotEntry is one decoded snapshot entry.
type snapshotEntry struct {
	pid   int64
	entry producerEntry
}

// decodeSnapshot parses and checks a snapshot; any flaw is ErrCorruptFile.
// A producer whose last batch offset is -1 (it only ever wrote markers)
// gets no batch, as in Kafka.
func decodeSnapshot(b []byte) ([]snapshotEntry, error) {
	if len(b) < snapshotHeaderSize {
		return nil, fmt.Errorf("%w: snapshot of %d bytes", ErrCorruptFile, len(b))
	}
	if v := int16(binary.BigEndian.Uint16(b)); v != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version %d", ErrCorruptFile, v)
	}
	if want, got := binary.BigEndian.Uint32(b[2:]), crc32.Checksum(b[6:], crc32c); want != got {
		return nil, fmt.Errorf("%w: snapshot crc %08x, computed %08x", ErrCorruptFile, want, got)
	}
	n := int32(binary.BigEndian.Uint32(b[6:]))
	if n < 0 || int64(len(b)-snapshotHeaderSize) != int64(n)*snapshotEntrySize {
		return nil, fmt.Errorf("%w: snapshot claims %d entries in %d bytes", ErrCorruptFile, n, len(b))
	}
	out := make([]snapshotEntry, 0, n)
	for p := b[snapshotHeaderSize:]; len(p) > 0; p = p[snapshotEntrySize:] {
		e := newProducerEntry()
		pid := int64(binary.BigEndian.Uint64(p[0:]))
		e.epoch = int16(binary.BigEndian.Uint16(p[8:]))
		m := batchMeta{
			lastSeq:     int32(binary.BigEndian.Uint32(p[10:])),
			lastOffset:  int64(binary.BigEndian.Uint64(p[14:])),
			offsetDelta: int32(binary.BigEndian.Uint32(p[22:])),
		}
		e.lastTimestamp = int64(binary.BigEndian.Uint64(p[26:]))
		e.coordinatorEpoch = int32(binary.BigEndian.Uint32(p[34:]))
		e.txnFirst = int64(binary.BigEndian.Uint64(p[38:]))
		if pid < 0 || m.offsetDelta < 0 || e.txnFirst < -1 {
			return nil, fmt.Errorf("%w: snapshot entry for producer %d out of range", ErrCorruptFile, pid)
		}
		if m.lastOffset >= 0 {
			m.timestamp = e.lastTimestamp
			e.addBatch(m)
		}
		out = append(out, snapshotEntry{pid: pid, entry: e})
	}
	return out, nil
}

// listSnapshots returns the offsets of the snapshot files in dir, in
// increasing order, removing leftover temporary files of interrupted writes.
func listSnapshots(fsys FS, dir string) ([]int64, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", dir, err)
	}
	var offs []int64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, snapshotSuffix+".tmp") {
			if err := removeIfExists(fsys, filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		if off, ok := parseSegmentName(name, snapshotSuffix); ok && !e.IsDir() {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	return offs, nil
}

// readSnapshotFile reads and decodes the snapshot at offset.
func readSnapshotFile(fsys FS, dir string, offset int64) ([]snapshotEntry, error) {
	path := snapshotPath(dir, offset)
	b, err := readFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	entries, err := decodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	return entries, nil
}

// takeSnapshotLocked writes the producer state as the snapshot at the log
// end offset (nothing when one exists there) and keeps the newest
// snapshotsKept. The caller holds wmu; the state covers exactly [.., LEO).
func (l *Log) takeSnapshotLocked() error {
	leo := l.leo.Load()
	if n := len(l.snaps); n > 0 && l.snaps[n-1] == leo {
		return nil
	}
	if err := writeFileAtomic(l.fs, snapshotPath(l.dir, leo), encodeSnapshot(l.ps.producers)); err != nil {
		return fmt.Errorf("write producer snapshot: %w", err)
	}
	l.snaps = append(l.snaps, leo)
	slices.Sort(l.snaps)
	if n := len(l.snaps); n > snapshotsKept {
		old := l.snaps[:n-snapshotsKept]
		if err := l.deleteSnapshots(old); err != nil {
			return err
		}
		l.snaps = append([]int64(nil), l.snaps[n-snapshotsKept:]...)
	}
	return nil
}

// deleteSnapshots removes the snapshot files at offs. A snapshot that goes
// missing is harmless: Open rebuilds from an older one or the log.
func (l *Log) deleteSnapshots(offs []int64) error {
	var errs []error
	for _, off := range offs {
		errs = append(errs, removeIfExists(l.fs, snapshotPath(l.dir, off)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete producer snapshots: %w", err)
	}
	return nil
}

// dropSnapshotsLocked deletes the snapshots for which drop is true and
// forgets them. The caller holds wmu.
func (l *Log) dropSnapshotsLocked(drop func(off int64) bool) error {
	var doomed, keep []int64
	for _, off := range l.snaps {
		if drop(off) {
			doomed = append(doomed, off)
		} else {
			keep = append(keep, off)
		}
	}
	l.snaps = keep
	return l.deleteSnapshots(doomed)
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

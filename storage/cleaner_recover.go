package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// finishInterruptedSwaps brings the directory back to plain segments before
// Open loads it (Kafka's LogLoader does the same with these suffixes):
//
//   - "*.deleted" files (retention or a finished swap) and "*.cleaned"
//     files (a cleaning that never reached its swap) are removed;
//   - a "<base>.log.swap" file means a swap was decided: every segment
//     whose base offset lies in [base, end of the swap file's batches) (at
//     least the one at base) is removed, then the swap file becomes
//     "<base>.log"; its indexes are rebuilt by load, which finds them
//     missing;
//   - a "<base>.txnindex.swap" next to the log swap becomes "<base>.txnindex"
//     (it was complete before the log swap was renamed; the old segments'
//     .txnindex files in the range go with them);
//   - other index ".swap" files are removed (their segment's indexes, if the
//     log swap is still there, are rebuilt).
func (l *Log) finishInterruptedSwaps() error {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var swaps []int64
	names := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		names[name] = true
		switch {
		case e.IsDir():
		case strings.HasSuffix(name, deletedSuffix), strings.HasSuffix(name, cleanedSuffix):
			if err := removeIfExists(l.fs, filepath.Join(l.dir, name)); err != nil {
				return err
			}
			delete(names, name)
		case strings.HasSuffix(name, logSuffix+swapSuffix):
			if base, ok := parseSegmentName(strings.TrimSuffix(name, swapSuffix), logSuffix); ok {
				swaps = append(swaps, base)
			}
		}
	}
	sort.Slice(swaps, func(i, j int) bool { return swaps[i] < swaps[j] })
	for _, base := range swaps {
		logPath, idxPath, tixPath := segmentPaths(l.dir, base)
		end, err := swapFileEnd(l.fs, logPath+swapSuffix, base)
		if err != nil {
			return err
		}
		for name := range names {
			b, ok := parseSegmentName(name, logSuffix)
			if !ok || b < base || b >= max(end, base+1) {
				continue
			}
			lp, ip, tp := segmentPaths(l.dir, b)
			for _, p := range []string{lp, ip, tp, txnIndexPath(l.dir, b)} {
				if err := removeIfExists(l.fs, p); err != nil {
					return err
				}
			}
			delete(names, name)
		}
		for _, p := range []string{idxPath, tixPath, idxPath + swapSuffix, tixPath + swapSuffix} {
			if err := removeIfExists(l.fs, p); err != nil {
				return err
			}
		}
		txnPath := txnIndexPath(l.dir, base)
		if names[filepath.Base(txnPath)+swapSuffix] {
			if err := l.fs.Rename(txnPath+swapSuffix, txnPath); err != nil {
				return fmt.Errorf("complete swap of %s: %w", txnPath, err)
			}
			delete(names, filepath.Base(txnPath)+swapSuffix)
		}
		delete(names, filepath.Base(logPath)+swapSuffix)
		if err := l.fs.Rename(logPath+swapSuffix, logPath); err != nil {
			return fmt.Errorf("complete swap of %s: %w", logPath, err)
		}
		names[filepath.Base(logPath)] = true
		l.logger.Warn("completed interrupted compaction swap", "file", logPath, "end_offset", end)
	}
	for name := range names {
		if strings.HasSuffix(name, swapSuffix) {
			if err := removeIfExists(l.fs, filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("sync %s: %w", l.dir, err)
	}
	return nil
}

// swapFileEnd is the offset after the last whole batch of a swap file (its
// base when it holds none). The file was synced before it got its name, so
// it should be whole; load checks every batch anyway when it rebuilds the
// indexes.
func swapFileEnd(fsys FS, path string, base int64) (int64, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	r, done := newReader(f, st.Size())
	defer done()
	end := base
	for p := int64(0); p < st.Size(); {
		h, err := r.header(p)
		if err != nil {
			break
		}
		end = h.NextOffset()
		p += int64(h.TotalSize())
	}
	return end, nil
}

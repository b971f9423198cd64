package storage

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The caller's logger names the log (the replica's carries topic and
// partition); the log's own lines must not add them again, so the
// retention line, one event, is one line with each key once.
func TestRetentionLineNamesLogOnce(t *testing.T) {
	var out logBuf
	logger := newLogger(&out).With("topic", "orders", "partition", 3)
	cfg := testCfg()
	cfg.SegmentBytes = 600
	cfg.RetentionMs = 10_000
	dir := filepath.Join(t.TempDir(), PartitionDirName("orders", 3))
	l := retentionLog(t, dir, cfg, Options{Logger: logger}, 60)
	n, err := l.ApplyRetention(time.UnixMilli(1_000_000))
	if err != nil || n == 0 {
		t.Fatalf("ApplyRetention = %d, %v; want segments deleted", n, err)
	}
	var lines []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "deleted log segments by retention") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one retention line, got %d:\n%s", len(lines), out.String())
	}
	for _, key := range []string{"topic=", "partition=", "segments=", "log_start_offset="} {
		if c := strings.Count(" "+lines[0], " "+key); c != 1 {
			t.Errorf("%s appears %d times in %q", key, c, lines[0])
		}
	}
}

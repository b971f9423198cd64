package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	c, err := parseFlags([]string{"-kbroker", "/x", "-sizes", "100, 1024", "-records", "10,20", "-scale", "0.5", "-acks", "all", "-codecs", "lz4,none"})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ws := c.workloads()
	if len(ws) != 4 {
		t.Fatalf("got %d workloads, want 4", len(ws))
	}
	if ws[0].records != 5 || ws[3].records != 10 || ws[3].size != 1024 || ws[0].codec != "lz4" || ws[0].acks != "all" {
		t.Fatalf("unexpected workloads %+v", ws)
	}
	for _, bad := range [][]string{
		{},
		{"-kbroker", "x", "-records", "1"},
		{"-kbroker", "x", "-acks", "0"},
		{"-kbroker", "x", "-codecs", "gzip"},
		{"-kbroker", "x", "-sizes", "-1", "-records", "1"},
		{"-kbroker", "x", "-scale", "0"},
		{"-kbroker", "x", "-rounds", "0"},
	} {
		if _, err := parseFlags(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseFlags(%q) err = %v, want errUsage", bad, err)
		}
	}
}

func TestThousandsAndRatio(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
	if ratio(1, 0) != "-" || ratio(3, 2) != "1.50" {
		t.Errorf("ratio: %q %q", ratio(1, 0), ratio(3, 2))
	}
}

// TestRunKfakeAgainstItself drives the whole harness end to end with
// kfakeserver processes on both sides: build, cold starts, every matrix
// cell, the report.
func TestRunKfakeAgainstItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs broker processes")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	bin, err := buildKfakeServer(ctx, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{
		kbroker: "kfake", kfakeServer: bin,
		sizes: []int{100, 1024}, records: []int{2000, 500}, scale: 1,
		acks: []string{"1", "all"}, codecs: []string{"none", "lz4"},
		partitions: 3, starts: 2, rounds: 2, warmup: 100,
		startTimeout: 30 * time.Second, phaseTimeout: 30 * time.Second,
		tmpRoot: dir,
	}
	var out, progress bytes.Buffer
	if err := run(ctx, cfg, &out, &progress); err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	report := out.String()
	if strings.Contains(report, "FAIL") || strings.Contains(report, "failures:") {
		t.Fatalf("report has failures:\n%s\nprogress:\n%s", report, progress.String())
	}
	for _, want := range []string{"100B acks=1 none", "1KiB acks=all lz4", "produce", "consume", "kfake(disk) rec/s", "peak RSS", "restarts"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if n := strings.Count(report, "consume"); n != 8 {
		t.Errorf("report has %d consume rows, want 8:\n%s", n, report)
	}
	// A clean run removes its temporary tree.
	left, _ := filepath.Glob(filepath.Join(dir, "kbroker-bench-*"))
	if len(left) != 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Errorf("kfakeserver binary vanished: %v", err)
	}
}

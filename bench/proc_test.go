package main

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// comm may hold spaces and parentheses; utime=250, stime=50 ticks.
	line := "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 99 1000 200 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatalf("parseStatCPU: %v", err)
	}
	if want := 3 * time.Second; got != want {
		t.Fatalf("cpu = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1234 no paren 1 2 3", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5 0"} {
		if _, err := parseStatCPU([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseStatCPU(%q) err = %v, want errProcFormat", bad, err)
		}
	}
}

func TestParseStatusMem(t *testing.T) {
	t.Parallel()
	status := "Name:\tkbroker\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t7\n"
	m, err := parseStatusMem([]byte(status))
	if err != nil {
		t.Fatalf("parseStatusMem: %v", err)
	}
	if m.rss != 1024<<10 || m.peak != 2048<<10 {
		t.Fatalf("got rss=%d peak=%d, want %d and %d", m.rss, m.peak, 1024<<10, 2048<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t1 kB\n", "VmHWM:\t1 kB\nVmRSS:\tlots kB\n", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n"} {
		if _, err := parseStatusMem([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseStatusMem(%q) err = %v, want errProcFormat", bad, err)
		}
	}
}

// TestOwnProcess reads this test process's real /proc files: CPU must
// grow while we burn some, and the peak RSS can never be below the RSS.
func TestOwnProcess(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatalf("cpuTime: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for {
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		now, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatalf("cpuTime: %v", err)
		}
		if now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stuck at %v after 10s of spinning (x=%d)", now, x)
		}
	}
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatalf("readMem: %v", err)
	}
	if m.rss <= 0 || m.peak < m.rss {
		t.Fatalf("rss=%d peak=%d: want 0 < rss <= peak", m.rss, m.peak)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Fatal("cpuTime(-1) succeeded")
	}
}

func TestParseMachineBusy(t *testing.T) {
	t.Parallel()
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 20 30 5000 700 4 6 40 9 0\ncpu0 50 10 15 2500 350 2 3 20 9 0\nintr 1 2 3\n"
	got, err := parseMachineBusy([]byte(stat))
	if err != nil {
		t.Fatalf("parseMachineBusy: %v", err)
	}
	if want := 200 * time.Second / userHZ; got != want {
		t.Fatalf("busy = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "intr 1 2\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, err := parseMachineBusy([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseMachineBusy(%q) err = %v, want errProcFormat", bad, err)
		}
	}
	if _, err := machineBusy(); err != nil {
		t.Fatalf("machineBusy on this machine: %v", err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat. The kernel
// reports these fields in USER_HZ, which is 100 on every mainstream Linux
// architecture independently of the kernel's internal HZ, so a constant is
// both correct and avoids cgo for sysconf(_SC_CLK_TCK).
const userHZ = 100

// errProcFormat reports a /proc file whose contents we could not parse.
var errProcFormat = errors.New("bench: unexpected /proc format")

// cpuTime returns the user+system CPU time the process pid has consumed so
// far (all threads, as /proc/<pid>/stat aggregates them).
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseStatCPU(raw)
}

// parseStatCPU extracts utime+stime from the contents of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may itself contain
// spaces and parentheses, so fields are counted from the last ')'.
func parseStatCPU(raw []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: stat has no command terminator", errProcFormat)
	}
	// After ") " come fields 3 (state) onwards; utime is field 14 and
	// stime field 15, i.e. indexes 11 and 12 of this slice.
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%w: stat has %d fields after command", errProcFormat, len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: utime %q: %v", errProcFormat, fields[11], err)
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: stime %q: %v", errProcFormat, fields[12], err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// memStatus holds the resident-set figures of /proc/<pid>/status, in bytes.
type memStatus struct {
	rss  int64 // VmRSS: resident now
	peak int64 // VmHWM: the high-water mark of VmRSS since exec
}

// readMem returns the current and peak resident set size of pid.
func readMem(pid int) (memStatus, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseStatusMem(raw)
}

// parseStatusMem extracts VmRSS and VmHWM from the contents of
// /proc/<pid>/status, where both are given as "<n> kB".
func parseStatusMem(raw []byte) (memStatus, error) {
	var m memStatus
	var haveRSS, havePeak bool
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return memStatus{}, fmt.Errorf("%w: %s value %q", errProcFormat, key, val)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("%w: %s value %q: %v", errProcFormat, key, val, err)
		}
		if key == "VmRSS" {
			m.rss, haveRSS = n<<10, true
		} else {
			m.peak, havePeak = n<<10, true
		}
	}
	if !haveRSS || !havePeak {
		return memStatus{}, fmt.Errorf("%w: status lacks VmRSS or VmHWM", errProcFormat)
	}
	return m, nil
}

// machineBusy returns the CPU time all CPUs of the machine have spent
// outside idle and iowait since boot, from the aggregate line of /proc/stat.
// Subtracting the broker's and the benchmark's own CPU from its delta shows
// how much other work shared the machine during a phase.
func machineBusy() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseMachineBusy(raw)
}

// parseMachineBusy sums user, nice, system, irq, softirq and steal of the
// first ("cpu ") line of /proc/stat. guest time is already inside user.
func parseMachineBusy(raw []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("%w: /proc/stat first line %q", errProcFormat, line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system _ _ irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: /proc/stat field %d %q: %v", errProcFormat, i, f[i], err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

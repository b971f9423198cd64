package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// printReport writes the results table, the process table and any
// failures to w.
func printReport(w io.Writer, cfg config, sides [2]*side, rows []row) {
	a, b := sides[0].spec.label, sides[1].spec.label
	fmt.Fprintf(w, "\nkbroker bench: %s vs %s — %s/%s, %d CPUs, %s\n", a, b, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	var counts []string
	for i, s := range cfg.sizes {
		counts = append(counts, fmt.Sprintf("%s×%d", sizeName(s), cfg.records[i]))
	}
	fmt.Fprintf(w, "%d partitions, records per row: %s, %d round(s); values text-like, no keys; franz-go defaults otherwise\n",
		cfg.partitions, strings.Join(counts, ", "), cfg.rounds)
	fmt.Fprintf(w, "MB/s = value bytes / 10^6 / s; cpu = broker user+sys from /proc/<pid>/stat (10 ms ticks); ratio = %s / %s\n", a, b)
	fmt.Fprintf(w, "other load = CPUs busy with neither broker nor benchmark during the phase (%s|%s; includes kernel writeback): high values mean a noisy row\n\n", a, b)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tphase\t%s rec/s\tMB/s\tcpu µs/rec\t%s rec/s\tMB/s\tcpu µs/rec\trec/s ratio\tcpu/rec ratio\tother load\t\n", a, b)
	var failures []string
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t", r.w.String(), r.phase)
		for k, c := range r.res {
			if c.err != nil {
				fmt.Fprint(tw, "FAIL\t-\t-\t")
				if !errors.Is(c.err, errSkipped) {
					failures = append(failures, fmt.Sprintf("%s %s on %s: %v", r.w, r.phase, sides[k].spec.label, c.err))
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t", thousands(c.recPerSec()), c.mbPerSec(), c.cpuPerRec())
		}
		x, y := r.res[0], r.res[1]
		if x.err != nil || y.err != nil {
			fmt.Fprint(tw, "-\t-\t-\t\n")
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f|%.2f\t\n", ratio(x.recPerSec(), y.recPerSec()), ratio(x.cpuPerRec(), y.cpuPerRec()), x.otherCores(), y.otherCores())
	}
	tw.Flush()

	fmt.Fprintf(w, "\nprocess (median of %d cold starts; peak over the whole run)\n", cfg.starts)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "broker\tstart→log line\tstart→serving\tidle RSS\tpeak RSS (VmHWM)\trestarts\t\n")
	var med [2]startSample
	for k, s := range sides {
		var line, serv []time.Duration
		var idle []int64
		for _, st := range s.starts {
			line, serv, idle = append(line, st.lineReady), append(serv, st.serving), append(idle, st.idleRSS)
		}
		med[k] = startSample{median(line), median(serv), median(idle)}
		fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\t%d\t\n", s.spec.label,
			med[k].lineReady.Round(time.Millisecond), med[k].serving.Round(time.Millisecond),
			mib(med[k].idleRSS), mib(s.peakRSS), s.restarts)
	}
	fmt.Fprintf(tw, "ratio\t%s\t%s\t%s\t%s\t\t\n",
		ratio(float64(med[0].lineReady), float64(med[1].lineReady)),
		ratio(float64(med[0].serving), float64(med[1].serving)),
		ratio(float64(med[0].idleRSS), float64(med[1].idleRSS)),
		ratio(float64(sides[0].peakRSS), float64(sides[1].peakRSS)))
	tw.Flush()

	if len(failures) > 0 {
		fmt.Fprintf(w, "\nfailures:\n")
		for _, f := range failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}

// ratio formats a/b, or "-" when b is zero.
func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// thousands formats a rate as an integer with thousands separators.
func thousands(f float64) string {
	s := fmt.Sprintf("%d", int64(f+0.5))
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"
)

// errSkipped marks a consume phase not run because its produce failed.
var errSkipped = errors.New("bench: skipped, produce failed")

// side is one of the two brokers under comparison and everything measured
// about its process. Owned by the bench goroutine.
type side struct {
	spec     serverSpec
	srv      *server
	starts   []startSample
	restarts int
	peakRSS  int64 // largest VmHWM over every process of this side
}

// startSample is one cold start of a broker.
type startSample struct {
	lineReady, serving time.Duration
	idleRSS            int64
}

// cell is one broker's result for one phase of one workload.
type cell struct {
	records int
	bytes   int64
	elapsed time.Duration
	cpu     time.Duration // the broker's user+sys CPU
	other   time.Duration // CPU used by neither broker nor benchmark: noise
	err     error
}

func (c cell) recPerSec() float64 { return float64(c.records) / c.elapsed.Seconds() }
func (c cell) mbPerSec() float64  { return float64(c.bytes) / 1e6 / c.elapsed.Seconds() }

// otherCores is how many CPUs' worth of unrelated work ran meanwhile.
func (c cell) otherCores() float64 { return c.other.Seconds() / c.elapsed.Seconds() }
func (c cell) cpuPerRec() float64 {
	return float64(c.cpu.Microseconds()) / float64(c.records)
}

// add folds another round's result into c: totals add up, so rates are
// over all rounds together; the first error of any round sticks.
func (c cell) add(o cell) cell {
	if c.err != nil {
		return c
	}
	if o.err != nil {
		return o
	}
	return cell{
		records: c.records + o.records,
		bytes:   c.bytes + o.bytes,
		elapsed: c.elapsed + o.elapsed,
		cpu:     c.cpu + o.cpu,
		other:   c.other + o.other,
	}
}

// row is one line of the report: a workload's phase on both sides.
type row struct {
	w     workload
	phase string // "produce" or "consume"
	res   [2]cell
}

// bench runs the matrix; it is single-goroutine state.
type bench struct {
	cfg      config
	root     string
	progress io.Writer
	sides    [2]*side
	failed   bool // a broker failed somewhere: keep the logs
	topicSeq int
}

// runAll measures cold starts, warms both brokers up, then runs every
// workload on both, alternating which goes first.
func (b *bench) runAll(ctx context.Context) ([]row, error) {
	if err := b.measureStarts(ctx); err != nil {
		return nil, err
	}
	if b.cfg.warmup > 0 {
		w := workload{size: b.cfg.sizes[0], acks: "all", codec: "none", records: b.cfg.warmup, partitions: int32(b.cfg.partitions)}
		for _, s := range b.sides {
			p, c := b.runOne(ctx, s, w)
			if p.err != nil || c.err != nil {
				fmt.Fprintf(b.progress, "warm-up on %s failed: produce: %v; consume: %v\n", s.spec.label, p.err, c.err)
			}
		}
	}

	ws := b.cfg.workloads()
	rows := make([]row, 0, 2*len(ws))
	for _, w := range ws {
		rows = append(rows, row{w: w, phase: "produce"}, row{w: w, phase: "consume"})
	}
	for r := 0; r < b.cfg.rounds; r++ {
		for i, w := range ws {
			order := []int{0, 1}
			if (i+r)%2 == 1 {
				order = []int{1, 0}
			}
			prod, cons := &rows[2*i], &rows[2*i+1]
			for _, k := range order {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				s := b.sides[k]
				fmt.Fprintf(b.progress, "[round %d/%d, %d/%d] %-20s on %-14s ", r+1, b.cfg.rounds, i+1, len(ws), w.String(), s.spec.label)
				p, c := b.runOne(ctx, s, w)
				fmt.Fprintf(b.progress, "produce %s, consume %s\n", brief(p), brief(c))
				prod.res[k] = prod.res[k].add(p)
				cons.res[k] = cons.res[k].add(c)
			}
		}
	}
	for _, s := range b.sides {
		if s.srv != nil {
			s.srv.samplePeak()
			s.peakRSS = max(s.peakRSS, s.srv.peakRSS)
		}
	}
	return rows, ctx.Err()
}

// brief is the one-word progress line for a cell.
func brief(c cell) string {
	if c.err != nil {
		return "FAILED"
	}
	return fmt.Sprintf("%.0f rec/s", c.recPerSec())
}

// measureStarts cold-starts each broker cfg.starts times, alternating
// between them, and keeps the last instance of each running.
func (b *bench) measureStarts(ctx context.Context) error {
	for i := 0; i < b.cfg.starts; i++ {
		for _, s := range b.sides {
			srv, err := startServer(ctx, s.spec, b.root, b.cfg.startTimeout)
			if err != nil {
				b.failed = true
				return fmt.Errorf("start %s: %w", s.spec.label, err)
			}
			s.starts = append(s.starts, startSample{srv.lineReady, srv.serving, srv.idleRSS})
			fmt.Fprintf(b.progress, "start %d of %s: serving after %v, idle RSS %s\n",
				i+1, s.spec.label, srv.serving.Round(time.Millisecond), mib(srv.idleRSS))
			if i < b.cfg.starts-1 {
				srv.stop()
				s.peakRSS = max(s.peakRSS, srv.peakRSS)
				os.RemoveAll(srv.dataDir)
				continue
			}
			s.srv = srv
		}
	}
	return nil
}

// runOne runs workload w's produce and consume phases on s, restarting the
// broker first if an earlier row killed it.
func (b *bench) runOne(ctx context.Context, s *side, w workload) (prod, cons cell) {
	prod = cell{records: w.records, bytes: int64(w.records) * int64(w.size)}
	cons = prod
	fail := func(err error) (cell, cell) {
		prod.err, cons.err = err, err
		return prod, cons
	}
	if err := b.ensureRunning(ctx, s); err != nil {
		return fail(err)
	}
	srv := s.srv

	b.topicSeq++
	topic := fmt.Sprintf("bench-%d-%d-%s-%s", b.topicSeq, w.size, w.acks, w.codec)
	if err := createTopic(ctx, srv.addr, topic, w.partitions, b.cfg.startTimeout); err != nil {
		return fail(b.brokerErr(srv, err))
	}
	payloads := makePayloads(w.size, 1024, 1)

	m, err := measure(ctx, srv, b.cfg.phaseTimeout, func(ctx context.Context) (time.Duration, error) {
		return produce(ctx, srv.addr, topic, w, payloads)
	})
	prod.elapsed, prod.cpu, prod.other, prod.err = m.elapsed, m.cpu, m.other, err
	if prod.err != nil {
		prod.err = b.brokerErr(srv, prod.err)
		cons.err = errSkipped
	} else {
		m, err := measure(ctx, srv, b.cfg.phaseTimeout, func(ctx context.Context) (time.Duration, error) {
			return consume(ctx, srv.addr, topic, w)
		})
		cons.elapsed, cons.cpu, cons.other, cons.err = m.elapsed, m.cpu, m.other, err
		if cons.err != nil {
			cons.err = b.brokerErr(srv, cons.err)
		}
	}
	srv.samplePeak()
	s.peakRSS = max(s.peakRSS, srv.peakRSS)
	if srv.alive() {
		if err := deleteTopic(ctx, srv.addr, topic); err != nil {
			fmt.Fprintf(b.progress, "\n  (%s: %v; continuing)\n", s.spec.label, err)
		}
	}
	return prod, cons
}

// measure runs phase under a timeout and returns its own timing, the
// broker's CPU consumed from just before to just after it, and the CPU the
// rest of the machine (neither broker nor benchmark) used meanwhile.
func measure(ctx context.Context, srv *server, timeout time.Duration, phase func(context.Context) (time.Duration, error)) (cell, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Write back what earlier phases left dirty in the page cache, so
	// this phase is not throttled paying for its predecessor's writes.
	syscall.Sync()
	var before, after [3]time.Duration
	sample := func(into *[3]time.Duration) error {
		var err error
		if into[0], err = cpuTime(srv.pid); err != nil {
			return err
		}
		if into[1], err = cpuTime(os.Getpid()); err != nil {
			return err
		}
		into[2], err = machineBusy()
		return err
	}
	if err := sample(&before); err != nil {
		return cell{}, err
	}
	elapsed, err := phase(ctx)
	if err != nil {
		return cell{}, err
	}
	if err := sample(&after); err != nil {
		return cell{}, err
	}
	broker, self := after[0]-before[0], after[1]-before[1]
	return cell{
		elapsed: elapsed,
		cpu:     broker,
		other:   max(0, after[2]-before[2]-broker-self),
	}, nil
}

// brokerErr marks the run as failed and, if the broker process died,
// attaches its exit status and the tail of its log to err.
func (b *bench) brokerErr(srv *server, err error) error {
	b.failed = true
	if srv.alive() {
		return err
	}
	return fmt.Errorf("%w (%w: %v; log %s:\n%s)", err, errExited, srv.exitErr, srv.logPath, logTail(srv.logPath, 20))
}

// ensureRunning restarts s's broker with a fresh data directory if the
// process has exited.
func (b *bench) ensureRunning(ctx context.Context, s *side) error {
	if s.srv != nil && s.srv.alive() {
		return nil
	}
	if s.srv != nil {
		s.peakRSS = max(s.peakRSS, s.srv.peakRSS)
	}
	s.restarts++
	fmt.Fprintf(b.progress, "\n  (restarting %s, which exited)\n", s.spec.label)
	srv, err := startServer(ctx, s.spec, b.root, b.cfg.startTimeout)
	if err != nil {
		b.failed = true
		return fmt.Errorf("restart %s: %w", s.spec.label, err)
	}
	s.srv = srv
	return nil
}

// stopAll stops both brokers.
func (b *bench) stopAll() {
	for _, s := range b.sides {
		if s != nil && s.srv != nil {
			s.srv.stop()
		}
	}
}

// median returns the middle value of xs (the upper middle for even len).
func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

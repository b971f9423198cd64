// Command bench compares kbroker with franz-go's kfake under one franz-go
// workload and prints a table; `make bench` at the repository root runs it.
//
// Both brokers run as their own processes so that each one's CPU can be read
// from /proc/<pid>/stat: kbroker from the binary given by -kbroker, kfake
// through our small wrapper in cmd/kfakeserver (built on the fly unless
// -kfakeserver names a binary). kfake keeps its log on disk (kfake.DataDir)
// unless -kfake-mem is given, in which case the column says "kfake(mem)".
//
// The matrix is record size × acks × codec. For every cell the two brokers
// run back to back, the order alternating from cell to cell so that machine
// noise lands on both; each broker gets a fresh topic, is produced to until
// every record is acknowledged, then read back from the start by a consumer
// without a group. Each phase is timed and charged the broker's user+system
// CPU delta. Start-up time, idle RSS and peak RSS (VmHWM) come from the same
// processes. Nothing is written except temporary data directories, removed at
// the end unless a broker failed or -keep is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errUsage reports bad command-line flags.
var errUsage = errors.New("bench: usage")

// config is everything the flags decide.
type config struct {
	kbroker      string // path to the kbroker binary, or "kfake" to bench kfake against itself
	kfakeServer  string // path to a built kfakeserver; empty builds one
	kfakeMem     bool
	sizes        []int
	records      []int // per entry of sizes
	scale        float64
	acks         []string
	codecs       []string
	partitions   int
	starts       int
	rounds       int
	warmup       int
	startTimeout time.Duration
	phaseTimeout time.Duration
	tmpRoot      string
	keep         bool
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	var sizes, records, acks, codecs string
	fs.StringVar(&c.kbroker, "kbroker", "", `path to the kbroker binary ("kfake" benches kfake against itself, for developing the harness)`)
	fs.StringVar(&c.kfakeServer, "kfakeserver", "", "path to a built cmd/kfakeserver (default: go build it into the temp dir)")
	fs.BoolVar(&c.kfakeMem, "kfake-mem", false, "run kfake in memory instead of with its on-disk store")
	fs.StringVar(&sizes, "sizes", "100,1024", "record value sizes in bytes, comma separated")
	fs.StringVar(&records, "records", "4000000,1000000", "records per row, one per entry of -sizes")
	fs.Float64Var(&c.scale, "scale", 1, "multiply every -records entry by this (e.g. 0.1 for a quick run)")
	fs.StringVar(&acks, "acks", "1,all", "acks settings to run: 1, all")
	fs.StringVar(&codecs, "codecs", "none,lz4", "batch compression to run: none, lz4")
	fs.IntVar(&c.partitions, "partitions", 6, "partitions per benchmark topic")
	fs.IntVar(&c.starts, "starts", 3, "cold starts per broker for the start-up time and idle RSS (median reported)")
	fs.IntVar(&c.rounds, "rounds", 2, "run the whole matrix this many times, alternating order; rates are over all rounds")
	fs.IntVar(&c.warmup, "warmup", 20000, "records produced and consumed per broker before measuring (0 = none)")
	fs.DurationVar(&c.startTimeout, "start-timeout", time.Minute, "how long a broker may take to serve")
	fs.DurationVar(&c.phaseTimeout, "phase-timeout", 3*time.Minute, "limit for one produce or consume phase")
	fs.StringVar(&c.tmpRoot, "tmp", "", "parent for the temporary directory (default: $TMPDIR)")
	fs.BoolVar(&c.keep, "keep", false, "keep data directories and broker logs")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.kbroker == "" {
		return c, fmt.Errorf("%w: -kbroker is required", errUsage)
	}
	var err error
	if c.sizes, err = parseInts(sizes); err != nil {
		return c, fmt.Errorf("%w: -sizes: %v", errUsage, err)
	}
	if c.records, err = parseInts(records); err != nil {
		return c, fmt.Errorf("%w: -records: %v", errUsage, err)
	}
	if len(c.records) != len(c.sizes) {
		return c, fmt.Errorf("%w: -records has %d entries, -sizes %d", errUsage, len(c.records), len(c.sizes))
	}
	if c.scale <= 0 {
		return c, fmt.Errorf("%w: -scale must be positive", errUsage)
	}
	for i := range c.records {
		c.records[i] = max(1, int(float64(c.records[i])*c.scale))
	}
	c.acks = splitList(acks)
	c.codecs = splitList(codecs)
	for _, a := range c.acks {
		if a != "1" && a != "all" {
			return c, fmt.Errorf("%w: -acks: unknown %q", errUsage, a)
		}
	}
	for _, k := range c.codecs {
		if k != "none" && k != "lz4" {
			return c, fmt.Errorf("%w: -codecs: unknown %q", errUsage, k)
		}
	}
	if len(c.acks) == 0 || len(c.codecs) == 0 {
		return c, fmt.Errorf("%w: -acks and -codecs need at least one entry", errUsage)
	}
	if c.partitions < 1 || c.starts < 1 || c.rounds < 1 || c.warmup < 0 {
		return c, fmt.Errorf("%w: -partitions, -starts and -rounds must be positive, -warmup not negative", errUsage)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// workloads expands the flags into the matrix, in the order rows print.
func (c config) workloads() []workload {
	var ws []workload
	for i, size := range c.sizes {
		for _, a := range c.acks {
			for _, k := range c.codecs {
				ws = append(ws, workload{size: size, acks: a, codec: k, records: c.records[i], partitions: int32(c.partitions)})
			}
		}
	}
	return ws
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run executes the whole benchmark and prints the report to out; progress
// and broker failures go to progress as they happen.
func run(ctx context.Context, cfg config, out, progress io.Writer) error {
	root, err := os.MkdirTemp(cfg.tmpRoot, "kbroker-bench-*")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	b := &bench{cfg: cfg, root: root, progress: progress}
	defer func() {
		if cfg.keep || b.failed {
			fmt.Fprintf(progress, "data and broker logs kept in %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()

	kfakeBin := cfg.kfakeServer
	if kfakeBin == "" {
		if kfakeBin, err = buildKfakeServer(ctx, root, progress); err != nil {
			return err
		}
	}
	kfakeLabel := "kfake(disk)"
	if cfg.kfakeMem {
		kfakeLabel = "kfake(mem)"
	}
	var a serverSpec
	if cfg.kbroker == "kfake" {
		a = kfakeSpec(kfakeBin, "A:"+kfakeLabel, !cfg.kfakeMem)
	} else {
		if _, err := os.Stat(cfg.kbroker); err != nil {
			return fmt.Errorf("kbroker binary: %w (run `make build` first)", err)
		}
		a = kbrokerSpec(cfg.kbroker)
	}
	b.sides = [2]*side{{spec: a}, {spec: kfakeSpec(kfakeBin, kfakeLabel, !cfg.kfakeMem)}}
	defer b.stopAll()

	rows, err := b.runAll(ctx)
	if err != nil {
		return err
	}
	printReport(out, cfg, b.sides, rows)
	return nil
}

// buildKfakeServer compiles cmd/kfakeserver of this module into dir. It
// expects to run from the bench module, as `go run .` in bench/ does.
func buildKfakeServer(ctx context.Context, dir string, progress io.Writer) (string, error) {
	bin := filepath.Join(dir, "kfakeserver")
	fmt.Fprintln(progress, "building cmd/kfakeserver ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kbroker/kbroker/bench/cmd/kfakeserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if outb, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kfakeserver (run from bench/ or pass -kfakeserver): %w\n%s", err, outb)
	}
	return bin, nil
}

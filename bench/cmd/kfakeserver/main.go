// Command kfakeserver runs a one-broker franz-go kfake cluster as its own
// process, so the benchmark can read its CPU and memory from /proc apart
// from the client's.
//
// It listens on 127.0.0.1:-port (0 picks a free port), keeps its log under
// -data-dir when one is given (kfake's on-disk store; otherwise everything
// stays in memory), and announces readiness the way kbroker does: a slog
// text line on stderr with msg="serving Kafka protocol" and addr=host:port.
// The bare address is also printed on stdout. SIGINT or SIGTERM closes the
// cluster, which flushes the on-disk store, and exits.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port to listen on, on 127.0.0.1 (0: any free port)")
	dataDir := flag.String("data-dir", "", "directory for kfake's on-disk store (empty: in memory)")
	syncWrites := flag.Bool("sync", false, "fsync every write (kfake.SyncWrites)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *port, *dataDir, *syncWrites); err != nil {
		log.Error("kfakeserver failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, port int, dataDir string, syncWrites bool) error {
	// Register for signals before announcing readiness, so a signal sent
	// right after the announcement is not lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port)}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	if syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake cluster: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return fmt.Errorf("kfake cluster listens on %d addresses, want 1", len(addrs))
	}
	store := "memory"
	if dataDir != "" {
		store = dataDir
	}
	log.Info("serving Kafka protocol", "addr", addrs[0], "store", store)
	fmt.Println(addrs[0])

	sig := <-sigs
	log.Info("shutting down", "signal", sig.String())
	c.Close()
	return nil
}

// Command kbroker runs one Kafka-compatible broker.
//
//	kbroker [server.properties] [--override key=value]...
//	kbroker healthcheck [host:port]
//
// Kafka container images' environment variables (KAFKA_*, KAFKA_CFG_*) apply
// between the file and the overrides; healthcheck exits 0 when a broker
// answers ApiVersions, for a Docker HEALTHCHECK without a shell.
// The command line follows Apache Kafka's kafka-server-start.sh; see
// `kbroker --help` for every configuration key and its default.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kbroker/kbroker/broker"
	"github.com/kbroker/kbroker/broker/config"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	cfg, notices, err := config.ParseEnv(args, os.Environ())
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(os.Stdout, config.Help())
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kbroker: %v\nRun 'kbroker --help' for every key and its allowed values.\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	for _, n := range notices {
		logger.Log(context.Background(), n.Level, n.Msg)
	}

	start := time.Now()
	startTimeout := 30 * time.Second
	if cfg.EtcdEmbedInitialCluster != "" {
		// The other members of the embedded etcd cluster may start later.
		startTimeout = 10 * time.Minute
	}
	// Signals are caught from the start: a SIGTERM while the broker starts
	// (waiting for the etcd quorum, recovering logs) stops it cleanly
	// instead of killing it with the default action.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	early := make(chan os.Signal, 1)
	started := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case s := <-sig:
			early <- s
			cancel()
		case <-started:
		}
	}()
	b, err := broker.Start(ctx, cfg, logger)
	close(started)
	<-watcherDone
	cancel()
	var s os.Signal
	select {
	case s = <-early:
	default:
	}
	if err != nil {
		if s != nil {
			logger.Info("stopped by signal during start-up", "signal", s.String(), "err", err)
			return 0
		}
		logger.Error("broker failed to start", "err", err)
		return 1
	}
	logger.Info("kbroker started", "startup", time.Since(start).Round(time.Millisecond).String())

	status := 0
	if s == nil {
		select {
		case s = <-sig:
		case <-b.Fatal():
			// The broker logged why; stop as Kafka halts, with an error
			// status so that a supervisor notices.
			status = 1
		}
	}
	if s != nil {
		logger.Info("received signal; stopping", "signal", s.String())
	}
	signal.Reset()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		return 1
	}
	return status
}

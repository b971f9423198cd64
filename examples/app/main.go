// Command app is the example application of examples/app: a producer and a
// consumer written with franz-go the way an application talks to Apache
// Kafka — nothing in it knows it talks to kbroker.
//
//	app produce [-bootstrap host:port,...] [-topic t] [-count n] [-interval d]
//	app consume [-bootstrap host:port,...] [-topic t] [-group g] [-count n]
//	app brokers [-bootstrap host:port,...]
//
// Flags default to the environment (KAFKA_BOOTSTRAP_SERVERS, TOPIC, GROUP_ID,
// MESSAGES, INTERVAL), as a compose file sets them. The producer writes
// "message-<n>" with key "<n>" and acks=all; the consumer prints each record
// as "consumed <key> <value>", committing its offsets as a group member;
// brokers prints the broker addresses Metadata returns, which are those of
// the listener the client connected through.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: app produce|consume|brokers [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	bootstrap := fs.String("bootstrap", env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"), "bootstrap servers")
	topic := fs.String("topic", env("TOPIC", "events"), "topic")
	group := fs.String("group", env("GROUP_ID", "example-consumer"), "consumer group")
	count := fs.Int("count", envInt("MESSAGES", 0), "records to produce or consume, 0 for no limit")
	interval := fs.Duration("interval", envDuration("INTERVAL", time.Second), "pause between produced records")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	seeds := strings.Split(*bootstrap, ",")
	var err error
	switch os.Args[1] {
	case "produce":
		err = produce(ctx, seeds, *topic, *count, *interval)
	case "consume":
		err = consume(ctx, seeds, *topic, *group, *count)
	case "brokers":
		err = brokers(ctx, seeds)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "app %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// produce writes count records (forever when 0), retrying each until the
// cluster takes it, so the producer may start before the brokers are ready.
func produce(ctx context.Context, seeds []string, topic string, count int, interval time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()
	for n := 0; count == 0 || n < count; n++ {
		rec := &kgo.Record{Key: []byte(strconv.Itoa(n)), Value: []byte(fmt.Sprintf("message-%d", n))}
		for {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := cl.ProduceSync(pctx, rec).FirstErr()
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "produce %s: %v; retrying\n", rec.Key, err)
			time.Sleep(time.Second)
		}
		fmt.Printf("produced %s %s partition=%d offset=%d\n", rec.Key, rec.Value, rec.Partition, rec.Offset)
		if interval > 0 && (count == 0 || n+1 < count) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
	}
	return nil
}

// consume reads the topic from the start as a member of group, printing
// every record, until count records (forever when 0); it commits what it
// printed before returning.
func consume(ctx context.Context, seeds []string, topic, group string, count int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := 0
	for count == 0 || seen < count {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fetches.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			seen++
			fmt.Printf("consumed %s %s\n", r.Key, r.Value)
		})
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.CommitUncommittedOffsets(cctx)
}

// brokers prints "broker <id> <host:port>" for each broker in Metadata.
func brokers(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(mctx, cl)
	if err != nil {
		return err
	}
	for _, b := range resp.Brokers {
		fmt.Printf("broker %d %s:%d\n", b.NodeID, b.Host, b.Port)
	}
	return nil
}

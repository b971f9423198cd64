package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// newKfake starts an in-process one-broker kfake cluster for workload tests.
func newKfake(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(t.TempDir()))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func TestProduceConsumeMatrix(t *testing.T) {
	t.Parallel()
	addr := newKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	for _, acks := range []string{"1", "all"} {
		for _, codec := range []string{"none", "lz4"} {
			w := workload{size: 100, acks: acks, codec: codec, records: 3000, partitions: 3}
			topic := fmt.Sprintf("t-%s-%s", acks, codec)
			if err := createTopic(ctx, addr, topic, w.partitions, 10*time.Second); err != nil {
				t.Fatalf("%s: %v", w, err)
			}
			if _, err := produce(ctx, addr, topic, w, makePayloads(w.size, 16, 1)); err != nil {
				t.Fatalf("%s: produce: %v", w, err)
			}
			if d, err := consume(ctx, addr, topic, w); err != nil || d <= 0 {
				t.Fatalf("%s: consume: %v, %v", w, d, err)
			}
			if err := deleteTopic(ctx, addr, topic); err != nil {
				t.Fatalf("%s: %v", w, err)
			}
		}
	}
}

// TestConsumeDetectsMismatch checks that the consumer notices a topic
// holding records of the wrong size, or fewer records than expected.
func TestConsumeDetectsMismatch(t *testing.T) {
	t.Parallel()
	addr := newKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	w := workload{size: 100, acks: "1", codec: "none", records: 500, partitions: 2}
	if err := createTopic(ctx, addr, "m", w.partitions, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(ctx, addr, "m", w, makePayloads(w.size, 4, 1)); err != nil {
		t.Fatal(err)
	}

	wrongSize := w
	wrongSize.size = 99
	if _, err := consume(ctx, addr, "m", wrongSize); !errors.Is(err, errShortRead) {
		t.Fatalf("wrong size: err = %v, want errShortRead", err)
	}

	tooMany := w
	tooMany.records = w.records + 1
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := consume(short, addr, "m", tooMany); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("missing record: err = %v, want deadline exceeded", err)
	}
}

func TestProduceToMissingTopicFails(t *testing.T) {
	t.Parallel()
	addr := newKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	w := workload{size: 10, acks: "all", codec: "none", records: 10, partitions: 1}
	if _, err := produce(ctx, addr, "absent", w, makePayloads(10, 1, 1)); err == nil {
		t.Fatal("produce to a topic that does not exist succeeded")
	}
}

func TestMakePayloads(t *testing.T) {
	t.Parallel()
	a, b := makePayloads(1024, 8, 7), makePayloads(1024, 8, 7)
	for i := range a {
		if len(a[i]) != 1024 || !bytes.Equal(a[i], b[i]) {
			t.Fatalf("payload %d: len %d, deterministic %v", i, len(a[i]), bytes.Equal(a[i], b[i]))
		}
	}
	if bytes.Equal(a[0], a[1]) {
		t.Fatal("payloads 0 and 1 are identical")
	}
	if _, err := (workload{acks: "2", codec: "none"}).producerOpts(); err == nil {
		t.Fatal("acks=2 accepted")
	}
	if _, err := (workload{acks: "1", codec: "zstd"}).producerOpts(); err == nil {
		t.Fatal("codec zstd accepted")
	}
}

package broker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// testCluster is N in-process brokers sharing one embedded etcd, as brokers
// sharing an external etcd cluster do. Brokers can be stopped (clean) or
// killed (no flush, no deregistration) and restarted on their log dirs.
type testCluster struct {
	t       *testing.T
	etcd    *etcd.Embedded
	dirs    []string
	brokers []*Broker // nil while stopped
	mutate  []func(*config.Config)
}

func startCluster(t *testing.T, n int, mutate ...func(*config.Config)) *testCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := etcd.StartEmbedded(ctx, etcd.EmbedConfig{
		Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, etcd: e, mutate: mutate}
	t.Cleanup(func() {
		for i := range c.brokers {
			c.stop(i)
		}
		e.Close()
	})
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.brokers = append(c.brokers, nil)
		c.start(i)
	}
	c.waitController()
	waitUntil(t, 20*time.Second, "every broker sees every registration", func() bool {
		for _, b := range c.brokers {
			if len(b.view.Image().Brokers) != n {
				return false
			}
		}
		return true
	})
	return c
}

func (c *testCluster) config(i int) *config.Config {
	cfg := config.NewConfig()
	cfg.NodeID = int32(i + 1)
	cfg.Listeners = []config.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 0}}
	cfg.LogDirs = []string{c.dirs[i]}
	cfg.EtcdEndpoints = c.etcd.Endpoints()
	cfg.BrokerSessionTimeoutMs = 2000
	cfg.ReplicaLagTimeMaxMs = 2000
	cfg.OffsetsTopicReplicationFactor = 3
	cfg.OffsetsTopicNumPartitions = 3
	cfg.TransactionStateLogReplicationFactor = 3
	cfg.TransactionStateLogNumPartitions = 3
	cfg.GroupInitialRebalanceDelayMs = 0
	for _, m := range c.mutate {
		m(cfg)
	}
	return cfg
}

// start (re)starts broker i on its log dir.
func (c *testCluster) start(i int) {
	c.t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{c.t}, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, c.config(i), logger)
	if err != nil {
		c.t.Fatalf("start broker %d: %v", i+1, err)
	}
	c.brokers[i] = b
}

// stop shuts broker i down cleanly.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if c.brokers[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.brokers[i].Shutdown(ctx)
	c.brokers[i] = nil
}

// kill stops broker i abruptly: connections and listeners close, nothing
// is flushed or marked clean, and its registration lease is left to expire.
func (c *testCluster) kill(i int) {
	c.t.Helper()
	if c.brokers[i] == nil {
		return
	}
	c.brokers[i].kill()
	c.brokers[i] = nil
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, b := range c.brokers {
		if b != nil {
			out = append(out, b.listeners[0].Addr().String())
		}
	}
	return out
}

func (c *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

func (c *testCluster) waitController() {
	c.t.Helper()
	waitUntil(c.t, 20*time.Second, "a controller is elected", func() bool {
		for _, b := range c.brokers {
			if b != nil && b.controller.Load() != nil {
				return true
			}
		}
		return false
	})
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Package broker serves the Kafka protocol: it accepts connections, decodes
// requests with kmsg, routes them to the partitions it hosts or to the
// controller, and answers in request order. Cluster metadata comes from etcd
// (package etcd) as an immutable image; partition data lives in package
// storage behind broker/replica.
//
// Lock order: partitionSet.mu → replica.Partition locks → storage locks.
// fetchSessions.mu is a leaf. No lock is held across an etcd call.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
	"github.com/kbroker/kbroker/internal/ratelog"
	"github.com/kbroker/kbroker/storage"
)

// Broker is one kbroker process's Kafka-facing server.
type Broker struct {
	cfg    *config.Config
	logger *slog.Logger
	nodeID int32

	embedded *etcd.Embedded
	client   *clientv3.Client
	store    *etcd.Store
	view     *etcd.MetadataView
	// regPtr is the current registration; it is replaced when the lease
	// is lost and the broker registers again.
	regPtr atomic.Pointer[etcd.Registration]

	// controller is set while this broker holds the controller election.
	controller atomic.Pointer[etcd.Controller]

	// stopping is set when Shutdown starts, so a lease revoked on purpose is
	// not mistaken for a lost one.
	stopping atomic.Bool

	partitions      *partitionSet
	fetchers        followers
	isr             *isrWriter
	interBroker     *interBroker
	lease           leaseGuard
	groups          *groupShards
	txns            *txnShards
	sessions        *fetchSessions
	producerIDs     *producerIDAllocator
	metrics         *metrics
	badInputLimiter *rate.Limiter
	// largeFrames recycles large request buffers across connections.
	largeFrames framePool

	listeners []net.Listener
	// autoCreating holds the topics this broker is auto-creating, as
	// Kafka's AutoTopicCreationManager keeps its in-flight topics: a
	// Metadata request for a topic already under way starts no second
	// creation (see startAutoCreate).
	autoCreating sync.Map // topic name → struct{}
	// repeats logs warnings that recur while a condition lasts once, then
	// at most once a minute with a count.
	repeats *ratelog.Logger
	// fatal carries the reason the broker cannot go on (every log dir
	// offline); see Fatal.
	fatal     chan error
	endpoints []etcd.Endpoint

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	metricsServer *http.Server

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

// Start brings a broker up: etcd (embedded unless etcd.endpoints is set),
// metadata watch, listeners, registration and the controller campaign. It
// returns once the broker serves requests.
func Start(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Broker, error) {
	b := &Broker{cfg: cfg, logger: logger, conns: map[net.Conn]struct{}{}, fatal: make(chan error, 1)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.badInputLimiter = rate.NewLimiter(rate.Every(time.Second), 10)
	b.metrics = newMetrics()
	b.sessions = newFetchSessions(1000)
	ok := false
	defer func() {
		if !ok {
			b.closeEtcd()
			b.cancel()
		}
	}()

	cleanDirs := map[string]bool{}
	for _, d := range cfg.LogDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("log.dirs: create %s: %w", d, err)
		}
		clean, err := storage.ConsumeCleanShutdown(d)
		if err != nil {
			return nil, fmt.Errorf("log.dirs: %s: %w", d, err)
		}
		cleanDirs[d] = clean
		if !clean && hasPartitionDirs(d) {
			logger.Info("log dir was not shut down cleanly; partitions will be recovered", "dir", d)
		}
	}

	endpoints := cfg.EtcdEndpoints
	if len(endpoints) == 0 && cfg.EtcdEmbedInitialCluster != "" && cfg.NodeID < 0 {
		return nil, fmt.Errorf("etcd.embed.initial.cluster names members by node.id: set node.id explicitly")
	}
	if len(endpoints) == 0 {
		name := "kbroker-" + strconv.Itoa(int(cfg.NodeID))
		if cfg.EtcdEmbedInitialCluster != "" {
			name = strconv.Itoa(int(cfg.NodeID)) // members are named by node.id
		}
		emb, err := etcd.StartEmbedded(ctx, etcd.EmbedConfig{
			Dir:            cfg.EtcdDataDir(),
			ClientURL:      cfg.EtcdEmbedClientURL,
			PeerURL:        cfg.EtcdEmbedPeerURL,
			Name:           name,
			InitialCluster: cfg.EtcdEmbedInitialCluster,
			Logger:         logger,
		})
		if err != nil {
			return nil, err
		}
		b.embedded = emb
		endpoints = emb.Endpoints()
	}
	cli, err := etcd.Dial(endpoints)
	if err != nil {
		return nil, err
	}
	b.client = cli
	if b.store, err = etcd.OpenStore(ctx, cli); err != nil {
		return nil, err
	}
	b.nodeID = cfg.NodeID
	if b.nodeID < 0 {
		if b.nodeID, err = b.store.AllocateBrokerID(ctx); err != nil {
			return nil, fmt.Errorf("allocate node.id: %w", err)
		}
		logger.Info("allocated node id", "node", b.nodeID)
	}
	b.logger = logger.With("node", b.nodeID)
	b.repeats = ratelog.New(b.logger, ratelog.Interval)
	b.producerIDs = newProducerIDAllocator(b.store)

	if err := b.listen(); err != nil {
		return nil, err
	}
	if b.view, err = b.store.Watch(b.ctx); err != nil {
		return nil, fmt.Errorf("watch metadata: %w", err)
	}
	b.fetchers = newReplicaFetchers(b)
	b.isr = newISRWriter(b)
	b.interBroker = &interBroker{b: b}
	b.partitions = newPartitionSet(b, cleanDirs)
	b.groups = newGroupShards(b)
	b.txns = newTxnShards(b)

	if err := b.register(ctx); err != nil {
		return nil, err
	}
	b.lease.lastRenew.Store(time.Now().UnixNano())
	b.lease.ttl.Store(int64(time.Duration(ttlSeconds(time.Duration(cfg.BrokerSessionTimeoutMs)*time.Millisecond)) * time.Second))
	b.wg.Add(6)
	go b.lease.watch(b)
	go b.isr.run()
	go b.campaign()
	go b.followImage()
	go b.flushLoop()
	go b.cleanupLoop()

	b.awaitFirstController(ctx)
	// Partitions on disk open (and recover) in the background: a request
	// for one not open yet opens it itself, so a broker with many
	// partitions serves the ones it has while it recovers the rest.
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.partitions.openExisting(b.ctx, b.view.Image())
	}()
	b.groups.startLed(b.view.Image())
	b.txns.startLed(b.view.Image())
	for i, l := range b.listeners {
		name := cfg.Listeners[i].Name
		b.wg.Add(1)
		go b.acceptLoop(l, name)
		args := []any{"listener", name, "addr", l.Addr().String()}
		if ep, ok := b.endpointOf(name); ok {
			args = append(args, "advertised", net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))))
		} else {
			args = append(args, "advertised", "none (not in advertised.listeners)")
		}
		b.logger.Info("serving Kafka protocol", args...)
	}
	if err := b.startMetricsServer(); err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// awaitFirstController holds the listeners back until a controller is
// elected (and ready, when it is this broker), as a Kafka broker serves only
// once it has caught up with the metadata: clients that ask for the
// controller as their first request (kafka-go's admin client) would
// otherwise be told there is none, and cache that. It gives up, with a
// warning, when ctx ends or after controllerStartWait.
func (b *Broker) awaitFirstController(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, controllerStartWait)
	defer cancel()
	for {
		id := b.view.Image().ControllerID
		if id >= 0 && (id != b.nodeID || b.controller.Load() != nil) {
			return
		}
		select {
		case <-ctx.Done():
			b.logger.Warn("serving before a controller is elected; admin requests may answer NOT_CONTROLLER for a moment", "waited", controllerStartWait)
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// controllerStartWait bounds awaitFirstController.
const controllerStartWait = 10 * time.Second

func ttlSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 2)
}

// register puts this broker under its lease in etcd. A registration left by
// this broker's previous incarnation is evicted at once when etcd is
// embedded (no one else can hold it); with an external etcd the broker waits
// for the old lease to expire, as a ZooKeeper-mode broker must.
func (b *Broker) register(ctx context.Context) error {
	ttl := time.Duration(b.cfg.BrokerSessionTimeoutMs) * time.Millisecond
	info := etcd.BrokerInfo{ID: b.nodeID, Rack: b.cfg.BrokerRack, Endpoints: b.endpoints, Incarnation: newIncarnation()}
	if b.partitions != nil {
		// Registering again after a lost lease: the dirs stay offline.
		info.OfflineDirs = b.partitions.offlineDirs()
		if len(info.OfflineDirs) == 0 {
			info.OfflineDirs = nil
		}
	}
	warned := false
	for {
		reg, err := b.store.RegisterBroker(ctx, info, ttl)
		if err == nil {
			b.regPtr.Store(reg)
			return nil
		}
		if !errors.Is(err, etcd.ErrBrokerIDInUse) {
			return fmt.Errorf("register broker %d in etcd: %w", b.nodeID, err)
		}
		if b.embedded != nil {
			if err := b.store.EvictBroker(ctx, b.nodeID); err != nil {
				return err
			}
			continue
		}
		if !warned {
			b.logger.Warn("node.id is still registered, by this broker's previous run or by another live broker; waiting for that registration to expire", "err", err)
			warned = true
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("register broker %d in etcd: %w (is another broker running with the same node.id?)", b.nodeID, err)
		}
	}
}

func newIncarnation() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}

// registration is the broker's current registration in etcd.
func (b *Broker) registration() *etcd.Registration { return b.regPtr.Load() }

// campaign runs for the controller until the broker stops; in a single-broker
// cluster it wins at once. It campaigns with the registration's session, so
// controllership ends with the broker's lease, as in ZooKeeper mode; after
// a lost lease it waits for the broker to register again.
func (b *Broker) campaign() {
	defer b.wg.Done()
	for b.ctx.Err() == nil {
		reg := b.registration()
		sess := reg.Session()
		select {
		case <-sess.Done():
			for b.registration() == reg && b.ctx.Err() == nil {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-b.ctx.Done():
				}
			}
			continue
		default:
		}
		ctl, err := b.store.Campaign(b.ctx, b.nodeID, sess)
		if err != nil {
			if b.ctx.Err() == nil {
				b.logger.Warn("controller campaign failed; retrying", "err", err)
				select {
				case <-time.After(time.Second):
				case <-b.ctx.Done():
				}
			}
			continue
		}
		b.controller.Store(ctl)
		b.logger.Info("became controller", "controller_epoch", ctl.Epoch)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.runController(b.ctx, ctl)
		}()
		select {
		case <-sess.Done():
			b.controller.Store(nil)
			b.logger.Warn("lost controller session")
		case <-b.ctx.Done():
			b.controller.Store(nil)
			return
		}
	}
}

// flushInterval is how often flush.ms policies are checked.
const flushInterval = 100 * time.Millisecond

func (b *Broker) flushLoop() {
	defer b.wg.Done()
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.partitions.flushDue()
		case <-b.ctx.Done():
			return
		}
	}
}

// cleanerBackoff is how often compacted logs are checked, as Kafka's
// log.cleaner.backoff.ms.
const cleanerBackoff = 15 * time.Second

// cleanupLoop runs retention every log.retention.check.interval.ms,
// compaction every cleanerBackoff, producer expiry every
// producer.id.expiration.check.interval.ms and the high watermark checkpoint
// every replica.high.watermark.checkpoint.interval.ms. Both run off the request path; appends
// only wait for the brief segment swaps.
func (b *Broker) cleanupLoop() {
	defer b.wg.Done()
	retention := time.NewTicker(time.Duration(max(b.cfg.LogRetentionCheckIntervalMs, 100)) * time.Millisecond)
	defer retention.Stop()
	cleaner := time.NewTicker(cleanerBackoff)
	defer cleaner.Stop()
	producers := time.NewTicker(time.Duration(max(b.cfg.ProducerIDExpirationCheckIntervalMs, 100)) * time.Millisecond)
	defer producers.Stop()
	hwCheckpoint := time.NewTicker(time.Duration(max(b.cfg.ReplicaHighWatermarkCheckpointIntervalMs, 100)) * time.Millisecond)
	defer hwCheckpoint.Stop()
	for {
		select {
		case <-hwCheckpoint.C:
			b.partitions.checkpointHighWatermarks()
		case <-retention.C:
			b.partitions.applyRetention()
		case <-producers.C:
			b.partitions.removeExpiredProducers()
		case <-cleaner.C:
			if b.cfg.LogCleanerEnable {
				b.partitions.compact()
			}
		case <-b.ctx.Done():
			return
		}
	}
}

func hasPartitionDirs(logDir string) bool {
	entries, _ := os.ReadDir(logDir)
	for _, e := range entries {
		if _, _, ok := storage.ParsePartitionDirName(e.Name()); ok && e.IsDir() {
			return true
		}
	}
	return false
}

// followImage applies each new metadata image to the hosted partitions.
func (b *Broker) followImage() {
	defer b.wg.Done()
	ch, cancel := b.view.Subscribe()
	defer cancel()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			// Always apply the newest image: a request may already have
			// acted on a newer one (opened a partition, started a shard)
			// than the notification carries.
			img := b.view.Image()
			b.partitions.reconcile(img)
			b.groups.reconcile(img)
			b.groups.startLed(img)
			b.txns.reconcile(img)
			b.txns.startLed(img)
		case <-b.ctx.Done():
			return
		case <-b.registration().Lost():
			if b.ctx.Err() != nil || b.stopping.Load() {
				return
			}
			b.logger.Error("broker registration lease lost (cut off from etcd?); registering again")
			for {
				ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
				err := b.register(ctx)
				cancel()
				if err == nil {
					break
				}
				if b.ctx.Err() != nil {
					return
				}
				b.logger.Warn("registering again failed; retrying", "err", err)
				select {
				case <-time.After(time.Second):
				case <-b.ctx.Done():
					return
				}
			}
			b.logger.Info("registered again", "broker_epoch", b.registration().Epoch())
			b.wg.Add(1)
			go b.lease.watch(b)
		}
	}
}

// Fatal reports, once, why the broker cannot go on serving: every log dir
// went offline. Whoever runs the broker then calls Shutdown and exits with
// an error, as Kafka halts.
func (b *Broker) Fatal() <-chan error { return b.fatal }

// fail stops the broker for good reason: one error line, then Fatal.
func (b *Broker) fail(err error) {
	b.logger.Error("the broker cannot go on and stops", "err", err)
	select {
	case b.fatal <- err:
	default:
	}
}

// Shutdown stops serving, flushes and closes every partition, marks the log
// dirs cleanly shut down and leaves the cluster.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.logger.Info("shutting down")
	b.stopping.Store(true)
	if b.registration() != nil {
		// Move leadership away first, while this broker still serves (and,
		// if it is the controller, still runs the loop that moves it).
		if err := b.controlledShutdown(ctx); err != nil {
			b.logger.Warn("controlled shutdown incomplete; leaders will move when the registration expires", "err", err)
		}
	}
	for _, l := range b.listeners {
		l.Close()
	}
	b.connsMu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.connsMu.Unlock()
	b.cancel()
	b.fetchers.Close()
	var errs []error
	if reg := b.registration(); reg != nil {
		if err := reg.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deregister: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if b.txns != nil {
		b.txns.closeAll()
	}
	if b.groups != nil {
		b.groups.closeAll()
	}
	if b.partitions != nil {
		if err := b.partitions.closeAll(); err != nil {
			errs = append(errs, fmt.Errorf("close partitions: %w", err))
		}
	}
	if len(errs) == 0 && b.partitions != nil && !b.partitions.recovered.Load() {
		// Partitions never opened may still need recovery: the next
		// start must not take the dirs as cleanly shut down.
		b.logger.Warn("stopped before every partition on disk was opened; the next start recovers the logs")
	} else if len(errs) == 0 {
		for _, d := range b.cfg.LogDirs {
			if b.partitions != nil && b.partitions.dirOffline(filepath.Clean(d)) {
				continue // failed: the next start must recover its logs
			}
			if err := storage.MarkCleanShutdown(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	b.interBroker.close()
	b.closeEtcd()
	if b.metricsServer != nil {
		b.metricsServer.Close()
	}
	err := errors.Join(errs...)
	if err != nil {
		b.logger.Error("shutdown incomplete; the next start will recover the logs", "err", err)
	} else {
		b.logger.Info("shut down cleanly")
	}
	return err
}

// kill stops the broker as a crash would, for tests: listeners and
// connections close and background work stops, but nothing is flushed, the
// log dirs are not marked clean and the registration is left to expire.
func (b *Broker) kill() {
	for _, l := range b.listeners {
		l.Close()
	}
	b.connsMu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.connsMu.Unlock()
	b.cancel()
	b.fetchers.Close()
	b.wg.Wait()
	if b.metricsServer != nil {
		b.metricsServer.Close()
	}
	// Close the etcd client without revoking the lease: other brokers see
	// this broker die only when the lease expires, as after a crash.
	b.interBroker.close()
	b.closeEtcd()
	if b.txns != nil {
		b.txns.closeAll()
	}
	if b.groups != nil {
		b.groups.closeAll()
	}
	b.partitions.abandon()
}

func (b *Broker) closeEtcd() {
	if b.client != nil {
		b.client.Close()
	}
	if b.embedded != nil {
		b.embedded.Close()
	}
}

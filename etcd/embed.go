package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Defaults for EmbedConfig, matching etcd's own well-known ports.
const (
	DefaultEmbedClientURL = "http://127.0.0.1:2379"
	DefaultEmbedPeerURL   = "http://127.0.0.1:2380"
	DefaultEmbedName      = "kbroker"
)

// Tuning of the embedded member. The broker's metadata is small (a few KB per
// topic) and changes rarely, so the defaults, sized for Kubernetes, waste
// memory; see the package doc for the measured effect.
const (
	// embedSnapshotCount is how many raft entries are applied between
	// snapshots. etcd keeps up to this many entries (plus the catch-up tail)
	// in memory; the v3 data lives in bbolt, so a snapshot is cheap.
	embedSnapshotCount = 2000
	// embedSnapshotCatchUpEntries is the raft tail kept after a snapshot for
	// slow followers. A single member has none.
	embedSnapshotCatchUpEntries = 500
	// embedCompactionRetention keeps this many revisions of history (the
	// compactor runs every five minutes). Without compaction every ISR
	// change would be kept forever, in bbolt and in the in-memory index.
	// Watchers that fall further behind re-list (see MetadataView).
	embedCompactionRetention = "10000"
	// embedTickMs and embedElectionMs: see startEmbeddedOnce.
	embedTickMs     = 25
	embedElectionMs = 250
	// portRetries bounds the attempts to start on a freshly chosen port when
	// the caller asked for port 0 and another process took the port between
	// our probe and etcd's bind.
	portRetries = 5
)

// EmbedConfig configures the single-member etcd server the broker runs when
// etcd.endpoints is empty.
type EmbedConfig struct {
	// Dir is the member's data directory (the broker passes
	// "<first log dir>/etcd"). Required.
	Dir string
	// ClientURL is where clients connect; default DefaultEmbedClientURL.
	// Port 0 picks a free port; Endpoints reports the one chosen.
	ClientURL string
	// PeerURL is the raft peer address; default DefaultEmbedPeerURL. A single
	// member never dials it, but etcd must bind it. Port 0 picks a free port.
	PeerURL string
	// Name is the member name; default DefaultEmbedName.
	Name string
	// InitialCluster, when set, makes this member one of a multi-member
	// cluster (etcd.embed.initial.cluster): etcd's "name=peerURL,..." form,
	// each member named by its broker's node.id. The member advertises the
	// peer URL listed for its Name, so PeerURL may listen on 0.0.0.0. Start
	// then waits for a quorum of members; etcd ignores the list once the
	// member has data. Empty means a single-member cluster.
	InitialCluster string
	// Logger receives etcd's own logs (Error as Error, everything else at
	// Debug); nil means slog.Default().
	Logger *slog.Logger
}

// Embedded is a running single-member etcd server. Its lifetime is owned by
// whoever called StartEmbedded; Close stops it.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	quiet     *atomic.Bool // demotes etcd's shutdown errors, see slogCore
	closeOnce sync.Once
}

// StartEmbedded starts an etcd member in cfg.Dir and returns once it serves
// client requests (a single member elects itself within the 250 ms election
// timeout, see startEmbeddedOnce). A
// busy fixed port fails fast with an error naming the config key to change;
// a context cancelled before the server is ready stops it again.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("etcd: embedded server needs a data directory")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultEmbedClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultEmbedPeerURL
	}
	if cfg.Name == "" {
		cfg.Name = DefaultEmbedName
	}
	if cfg.InitialCluster != "" {
		if _, err := initialClusterPeer(cfg.InitialCluster, cfg.Name); err != nil {
			return nil, err
		}
	}
	client, err := parseEmbedURL("etcd.embed.client.url", cfg.ClientURL)
	if err != nil {
		return nil, err
	}
	peer, err := parseEmbedURL("etcd.embed.peer.url", cfg.PeerURL)
	if err != nil {
		return nil, err
	}
	// Probe fixed ports first: etcd's own bind error is logged at Error and
	// names no config key.
	for _, u := range []*embedURL{client, peer} {
		if u.port != "0" {
			if err := probePort(u); err != nil {
				return nil, err
			}
		}
	}
	var lastErr error
	for range portRetries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("etcd: start embedded server: %w", err)
		}
		e, err := startEmbeddedOnce(ctx, cfg, client, peer)
		if err == nil {
			return e, nil
		}
		lastErr = err
		var pe *pickedPortError
		if !errors.As(err, &pe) {
			return nil, err
		}
		// Lost a race for a port we picked: pick again.
	}
	return nil, lastErr
}

func startEmbeddedOnce(ctx context.Context, cfg EmbedConfig, client, peer *embedURL) (*Embedded, error) {
	cu, err := client.resolve()
	if err != nil {
		return nil, err
	}
	pu, err := peer.resolve()
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{cu}
	ec.AdvertiseClientUrls = []url.URL{cu}
	ec.ListenPeerUrls = []url.URL{pu}
	ec.AdvertisePeerUrls = []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.InitialClusterToken = "kbroker"
	quiet := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(cfg.Logger, "etcd-server", quiet))
	// The HTTP/JSON gateway is unused (the broker speaks gRPC) and would dial
	// the configured address, which is wrong for port 0.
	ec.EnableGRPCGateway = false
	// A fresh or restarted single member elects itself after a randomised
	// election timeout; etcd's 100 ms tick and 1 s election timeout made a
	// restart take up to a second. A single member sends no heartbeats, so
	// short ticks cost only a timer wake-up. A multi-member embedded cluster
	// would want etcd's defaults back.
	ec.TickMs = embedTickMs
	ec.ElectionMs = embedElectionMs
	ec.SnapshotCount = embedSnapshotCount
	ec.SnapshotCatchUpEntries = embedSnapshotCatchUpEntries
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = embedCompactionRetention
	// MaxTxnOps stays at etcd's default (128) on purpose: the store chunks
	// large writes so that it also works against an external etcd.
	if cfg.InitialCluster != "" {
		adv, err := initialClusterPeer(cfg.InitialCluster, cfg.Name)
		if err != nil {
			return nil, err
		}
		ec.InitialCluster = cfg.InitialCluster
		ec.AdvertisePeerUrls = []url.URL{adv}
		// Members now talk to each other: etcd's own timings suit a LAN.
		ec.TickMs, ec.ElectionMs = 100, 1000
		if cfg.Logger != nil {
			cfg.Logger.Info("starting embedded etcd member; waiting for a quorum of the initial cluster", "member", cfg.Name, "initial_cluster", cfg.InitialCluster)
		}
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, describeBindError(err, client, peer)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		quiet.Store(true)
		e.Close()
		return nil, fmt.Errorf("etcd: embedded server in %s failed to start: %w", cfg.Dir, err)
	case <-ctx.Done():
		quiet.Store(true)
		closeWithin(e, embedCloseTimeout)
		return nil, fmt.Errorf("etcd: embedded server in %s not ready: %w", cfg.Dir, ctx.Err())
	}
	var eps []string
	for _, l := range e.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	return &Embedded{etcd: e, endpoints: eps, quiet: quiet}, nil
}

// embedCloseTimeout bounds closing a member that never became ready: one
// still waiting for its peers can take a long time to stop its raft node,
// and the caller (a broker giving up its start) is about to exit anyway;
// etcd's write-ahead log is safe to abandon.
const embedCloseTimeout = 3 * time.Second

func closeWithin(e *embed.Etcd, d time.Duration) {
	done := make(chan struct{})
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// initialClusterPeer returns the peer URL that an initial-cluster list
// gives for member name.
func initialClusterPeer(list, name string) (url.URL, error) {
	for _, entry := range strings.Split(list, ",") {
		n, raw, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			return url.URL{}, fmt.Errorf("etcd.embed.initial.cluster %q: entry %q is not name=peerURL", list, entry)
		}
		if n != name {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return url.URL{}, fmt.Errorf("etcd.embed.initial.cluster %q: bad peer URL %q for member %s", list, raw, n)
		}
		return *u, nil
	}
	return url.URL{}, fmt.Errorf("etcd.embed.initial.cluster %q does not list this broker's member %q (members are named by node.id)", list, name)
}

// Endpoints returns the client URLs the member actually listens on (with the
// real port when port 0 was asked for), ready for Dial.
func (e *Embedded) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// Err reports fatal errors of the running server (for example a failed
// fsync); the broker should treat one as fatal. It is closed by Close.
func (e *Embedded) Err() <-chan error {
	return e.etcd.Err()
}

// Close stops the server, waiting for in-flight requests up to etcd's request
// timeout. It is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.quiet.Store(true)
		e.etcd.Close()
	})
	return nil
}

// embedURL is a parsed http://host:port URL for one of the member's
// listeners, with the config key it came from for error messages.
type embedURL struct {
	key  string
	raw  string
	host string
	port string
}

func parseEmbedURL(key, raw string) (*embedURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s %q: only http:// is supported", key, raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, raw, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("%s %q: bad port: %w", key, raw, err)
	} else {
		port = strconv.FormatUint(p, 10)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%s %q: unexpected path", key, raw)
	}
	return &embedURL{key: key, raw: raw, host: host, port: port}, nil
}

// resolve returns the URL to hand to etcd. For port 0 it binds an ephemeral
// port, closes it and returns that port, so that the advertised URLs stored
// in the member's metadata are real addresses; the caller retries if the port
// is taken before etcd binds it.
func (u *embedURL) resolve() (url.URL, error) {
	port := u.port
	if port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(u.host, "0"))
		if err != nil {
			return url.URL{}, fmt.Errorf("%s %s: pick a free port: %w", u.key, u.raw, err)
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		if err := l.Close(); err != nil {
			return url.URL{}, fmt.Errorf("%s %s: pick a free port: %w", u.key, u.raw, err)
		}
	}
	return url.URL{Scheme: "http", Host: net.JoinHostPort(u.host, port)}, nil
}

func probePort(u *embedURL) error {
	l, err := net.Listen("tcp", net.JoinHostPort(u.host, u.port))
	if err != nil {
		return bindError(u, err)
	}
	return l.Close()
}

func bindError(u *embedURL, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: address already in use; choose another with --override %s=...: %w",
			u.key, u.raw, u.key, err)
	}
	return fmt.Errorf("%s %s: %w", u.key, u.raw, err)
}

// pickedPortError marks a bind failure on a port StartEmbedded chose itself
// (the caller asked for port 0), which is worth retrying with another port.
type pickedPortError struct{ err error }

func (e *pickedPortError) Error() string { return e.err.Error() }
func (e *pickedPortError) Unwrap() error { return e.err }

// describeBindError names the config key when etcd failed to bind one of our
// fixed ports (a race with another process after probePort), and marks a
// failure on a picked port as retryable.
func describeBindError(err error, client, peer *embedURL) error {
	var op *net.OpError
	if errors.Is(err, syscall.EADDRINUSE) && errors.As(err, &op) && op.Addr != nil {
		_, port, _ := net.SplitHostPort(op.Addr.String())
		for _, u := range []*embedURL{client, peer} {
			if u.port != "0" && u.port == port {
				return bindError(u, err)
			}
		}
		if client.port == "0" || peer.port == "0" {
			return &pickedPortError{fmt.Errorf("etcd: start embedded server: %w", err)}
		}
	}
	return fmt.Errorf("etcd: start embedded server: %w", err)
}

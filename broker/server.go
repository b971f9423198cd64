package broker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// listen binds every listener and registers what advertisedEndpoints makes
// of them.
func (b *Broker) listen() error {
	bound := map[string]int32{}
	for _, l := range b.cfg.Listeners {
		addr := net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listeners: %s on %s: %w (is another broker running? choose a port with --override listeners=PLAINTEXT://host:port)", l.Name, addr, err)
		}
		b.listeners = append(b.listeners, ln)
		bound[l.Name] = int32(ln.Addr().(*net.TCPAddr).Port)
	}
	b.endpoints = advertisedEndpoints(b.cfg, bound, os.Hostname)
	return nil
}

// advertisedEndpoints is what the broker registers and returns in Metadata,
// as Kafka's effectiveAdvertisedBrokerListeners: advertised.listeners, or
// listeners when that is unset (the whole list falls back, not each
// listener: a listener left out of a set advertised.listeners is bound but
// not advertised). Then, as Kafka's ListenerInfo, port 0 becomes the port
// the listener of that name bound, and an empty host this machine's
// hostname ("localhost" if it has none). Validate has already refused an
// advertised name that is not a listener and a wildcard host such as
// 0.0.0.0.
func advertisedEndpoints(cfg *config.Config, boundPorts map[string]int32, hostname func() (string, error)) []etcd.Endpoint {
	src := cfg.AdvertisedListeners
	if src == nil {
		src = cfg.Listeners
	}
	eps := make([]etcd.Endpoint, 0, len(src))
	for _, l := range src {
		ep := etcd.Endpoint{Listener: l.Name, Host: l.Host, Port: l.Port, SecurityProtocol: cfg.SecurityProtocolFor(l.Name)}
		if ep.Port == 0 {
			ep.Port = boundPorts[l.Name]
		}
		if ep.Host == "" {
			host, err := hostname()
			if err != nil || host == "" {
				host = "localhost"
			}
			ep.Host = host
		}
		eps = append(eps, ep)
	}
	return eps
}

func (b *Broker) acceptLoop(ln net.Listener, listener string) {
	defer b.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || b.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			b.logger.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetKeepAlive(true)
		}
		b.connsMu.Lock()
		b.conns[nc] = struct{}{}
		b.connsMu.Unlock()
		go func() {
			b.serveConn(nc, listener)
			b.connsMu.Lock()
			delete(b.conns, nc)
			b.connsMu.Unlock()
		}()
	}
}

// endpointOf is this broker's advertised endpoint for the named listener.
func (b *Broker) endpointOf(listener string) (etcd.Endpoint, bool) {
	for _, ep := range b.endpoints {
		if ep.Listener == listener {
			return ep, true
		}
	}
	return etcd.Endpoint{}, false
}

// advertisedEndpoint is the endpoint clients of a given listener should use,
// and false when the broker advertises no listener of that name. As Kafka's
// MetadataCache (getAliveBrokerNode, getAliveBrokerNodes) there is no
// fallback to another listener: such a broker is left out of Metadata and
// DescribeCluster, a partition it leads answers LISTENER_NOT_FOUND, and as
// a coordinator it is COORDINATOR_NOT_AVAILABLE.
func (b *Broker) advertisedEndpoint(info etcd.BrokerInfo, listener string) (etcd.Endpoint, bool) {
	for _, ep := range info.Endpoints {
		if ep.Listener == listener {
			return ep, true
		}
	}
	return etcd.Endpoint{}, false
}

func (b *Broker) startMetricsServer() error {
	addr := b.cfg.MetricsListener
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kbroker.metrics.listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", b.metrics.handler())
	if b.cfg.MetricsPprofEnable {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	b.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go b.metricsServer.Serve(ln)
	b.logger.Info("serving Prometheus metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return nil
}

package broker

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the broker's Prometheus metrics, on their own registry so that
// several brokers in one test process do not collide.
type metrics struct {
	reg            *prometheus.Registry
	connections    prometheus.Gauge
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	bytesIn        prometheus.Counter
	bytesOut       prometheus.Counter
	messagesIn     prometheus.Counter
	txnTimedOut    prometheus.Counter
	offlineLogDirs prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kbroker_connections", Help: "Open client connections."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_requests_total", Help: "Requests served, by API."}, []string{"api"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kbroker_request_handle_seconds", Help: "Time to handle a request (excluding long-poll waits), by API.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10)}, []string{"api"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbroker_produce_bytes_total", Help: "Record batch bytes appended by Produce."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbroker_fetch_bytes_total", Help: "Record batch bytes sent by Fetch."}),
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbroker_produce_records_total", Help: "Records appended by Produce."}),
		txnTimedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbroker_transactions_timed_out_total", Help: "Transactions the coordinator aborted because they outlived their timeout."}),
		offlineLogDirs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kbroker_offline_log_dirs", Help: "Log dirs taken offline after an I/O error (Kafka's OfflineLogDirectoryCount)."}),
	}
	m.reg.MustRegister(m.connections, m.requests, m.requestSeconds, m.bytesIn, m.bytesOut, m.messagesIn, m.txnTimedOut, m.offlineLogDirs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// registerTransactionGauge exposes how many transactions coordinated here
// have been open longer than their timeout — "hanging" transactions, which
// block read_committed consumers.
func (m *metrics) registerTransactionGauge(open func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kbroker_transactions_open_past_timeout",
		Help: "Transactions coordinated by this broker that have been open longer than their timeout.",
	}, func() float64 { return float64(open()) }))
}

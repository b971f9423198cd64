package compat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestClusterFollowerFetchingKcat (KIP-392) with librdkafka: brokers in
// racks rack-1..rack-3 with the rack-aware replica selector; kcat with
// client.rack set to a follower's rack reads the whole partition, in
// order, and the bytes come from that follower (its fetch byte counter
// grows by at least the records' size).
func TestClusterFollowerFetchingKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	c := StartCluster(t, 3, append(clusterOverrides,
		"broker.rack=rack-{id}",
		"replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector",
		"kbroker.metrics.listener=127.0.0.1:0")...)
	const topic, n = "ffk", 500
	c.CreateTopic(topic, 1, nil)
	produceAndReadBack(t, c, topic, 1, "rec", n)
	leader := c.WaitFullISR(topic, 10*time.Second)[0].Leader
	follower := leader%3 + 1

	fetched := func(id int32) float64 {
		t.Helper()
		var addr string
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d logs its metrics address", id), func() error {
			m := metricsLine.FindStringSubmatch(c.Node(id).Stderr())
			if m == nil {
				return errors.New("no metrics line yet")
			}
			addr = m[1]
			return nil
		})
		v, err := metricValue(testCtx(t, 10*time.Second), addr, "kbroker_fetch_bytes_total")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := fetched(follower)
	out := runKcat(t, kcat, "", "-b", strings.Join(c.Addrs(), ","), "-X", "broker.address.family=v4",
		"-X", fmt.Sprintf("client.rack=rack-%d", follower),
		"-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", fmt.Sprint(n), "-f", "%s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("kcat read %d records, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("rec-0-%d", i); l != want {
			t.Fatalf("record %d: %q, want %q", i, l, want)
		}
	}
	// Every value is at least 7 bytes; the batches carry more.
	if got := fetched(follower) - before; got < 7*n {
		t.Errorf("follower %d (rack-%d) served %v record bytes to kcat in rack-%d, want at least %d: the leader %d served them", follower, follower, got, follower, 7*n, leader)
	}
}

package broker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// ListTransactions answers state filters that name no transaction state in
// UnknownStateFilters (once each, case-sensitive), as Kafka does, and
// still lists what the known filters match.
func TestListTransactionsUnknownStateFilters(t *testing.T) {
	b := startBroker(t, t.TempDir(), func(c *config.Config) {
		c.TransactionStateLogReplicationFactor = 1
		c.TransactionStateLogNumPartitions = 1
		c.TransactionStateLogMinIsr = 1
	})
	admin := newClient(t, b.addr)

	list := func(filters ...string) *kmsg.ListTransactionsResponse {
		t.Helper()
		// Raw, not through kgo, which merges the answers of every broker
		// and with them the order of UnknownStateFilters.
		req := kmsg.NewPtrListTransactionsRequest()
		req.SetVersion(2)
		req.StateFilters = filters
		req.DurationFilterMillis = -1
		return rawRequest(t, admin, req).(*kmsg.ListTransactionsResponse)
	}

	// No transaction coordinator has started yet: nothing to list, the
	// filters are still checked.
	resp := list("Ongoing", "Bogus", "ongoing", "Bogus")
	if resp.ErrorCode != 0 || len(resp.TransactionStates) != 0 || !slices.Equal(resp.UnknownStateFilters, []string{"Bogus", "ongoing"}) {
		t.Fatalf("before any transaction: %+v", resp)
	}

	createTopic(t, admin, "lt", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer := newClient(t, b.addr, kgo.TransactionalID("lt-tx"), kgo.DefaultProduceTopic("lt"))
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	resp = list("Ongoing", "Bogus", "ongoing", "Bogus")
	if resp.ErrorCode != 0 || !slices.Equal(resp.UnknownStateFilters, []string{"Bogus", "ongoing"}) {
		t.Fatalf("known and unknown filters: %+v", resp)
	}
	if len(resp.TransactionStates) != 1 || resp.TransactionStates[0].TransactionalID != "lt-tx" || resp.TransactionStates[0].TransactionState != "Ongoing" {
		t.Fatalf("ongoing transaction not listed: %+v", resp.TransactionStates)
	}
	if resp := list("Bogus"); len(resp.TransactionStates) != 0 || !slices.Equal(resp.UnknownStateFilters, []string{"Bogus"}) {
		t.Fatalf("an unknown filter alone must match nothing: %+v", resp)
	}
	if resp := list(); len(resp.TransactionStates) != 1 || len(resp.UnknownStateFilters) != 0 {
		t.Fatalf("no filter: %+v", resp)
	}
	if err := producer.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

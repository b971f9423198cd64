package broker

// InitProducerID: v0-5
//
// Behavior:
// * Without a transactional ID: a fresh producer ID at epoch 0 for an
//   idempotent producer, from a block allocated through etcd. A producer
//   asking to bump its epoch (KIP-360, v3+) also gets a fresh ID, as Kafka
//   does for non-transactional producers.
// * With a transactional ID: routed to the transaction coordinator shard
//   (coordinator/txn): epoch bumps, fencing of zombies, aborting a prior
//   ongoing transaction, KIP-360 recovery.
// * INVALID_REQUEST, before routing, for a transactional ID that is empty
//   but not null (Kafka's TransactionCoordinator) and for a producer ID or
//   epoch given without the other (v3+; Kafka's KafkaApis, for idempotent
//   and transactional producers alike).
//
// Version notes:
// * v2: flexible; v3: producer ID/epoch for KIP-360 bumps; v5: PRODUCER_FENCED.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleInitProducerID(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.InitProducerIDRequest)
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	ctx, cancel := context.WithTimeout(c.b.ctx, 10*time.Second)
	defer cancel()
	if (r.ProducerID == -1) != (r.ProducerEpoch == -1) || (r.TransactionalID != nil && *r.TransactionalID == "") {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return now(resp), nil
	}
	if r.TransactionalID != nil {
		shard, kerrErr := c.b.txns.shardFor(ctx, *r.TransactionalID)
		if kerrErr != nil {
			resp.ErrorCode = kerrErr.Code
			return now(resp), nil
		}
		return now(shard.InitProducerID(ctx, r)), nil
	}
	id, err := c.b.producerIDs.next(ctx)
	if err != nil {
		c.b.logger.Error("allocate producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp), nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return now(resp), nil
}

// producerIDBlockSize is how many IDs one etcd allocation reserves, as
// Kafka's ProducerIdManager does.
const producerIDBlockSize = 1000

// producerIDAllocator hands out producer IDs from blocks reserved in etcd,
// so no two brokers ever give out the same ID.
type producerIDAllocator struct {
	store *etcd.Store
	mu    sync.Mutex
	next_ int64
	end   int64
}

func newProducerIDAllocator(store *etcd.Store) *producerIDAllocator {
	return &producerIDAllocator{store: store}
}

// Next hands out one producer ID (coordinator/txn's ProducerIDAllocator).
func (a *producerIDAllocator) Next(ctx context.Context) (int64, error) { return a.next(ctx) }

func (a *producerIDAllocator) next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next_ >= a.end {
		first, err := a.store.AllocateProducerIDBlock(ctx, producerIDBlockSize)
		if err != nil {
			return -1, fmt.Errorf("reserve producer id block: %w", err)
		}
		a.next_, a.end = first, first+producerIDBlockSize
	}
	id := a.next_
	a.next_++
	return id, nil
}

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
// * No producer ID block at hand (its reservation in etcd has not
//   answered within producerIDBlockWait, or failed): the request answers
//   COORDINATOR_LOAD_IN_PROGRESS, idempotent or transactional (a new ID, or
//   one whose epoch is exhausted), as Kafka's producer ID manager does while
//   it fetches a block; the reservation goes on and a retry finds it.
// * INVALID_REQUEST, before routing, for a transactional ID that is empty
//   but not null (Kafka's TransactionCoordinator) and for a producer ID or
//   epoch given without the other (v3+; Kafka's KafkaApis, for idempotent
//   and transactional producers alike).
//
// Version notes:
// * v2: flexible; v3: producer ID/epoch for KIP-360 bumps; v5: PRODUCER_FENCED.

import (
	"context"
	"errors"
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
		c.b.logger.Warn("allocate producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		var ke *kerr.Error
		if errors.As(err, &ke) {
			resp.ErrorCode = ke.Code
		}
		return now(resp), nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return now(resp), nil
}

// producerIDBlockSize is how many IDs one etcd reservation hands this
// broker, as Kafka's controller hands out in AllocateProducerIds.
const producerIDBlockSize = 1000

const (
	// producerIDBlockWait bounds how long a request waits for a block
	// being reserved before it answers COORDINATOR_LOAD_IN_PROGRESS.
	// Kafka answers at once; kbroker waits a moment so that a fresh
	// broker's first producer does not have to retry.
	producerIDBlockWait = 2 * time.Second
	// producerIDReserveTimeout bounds one reservation in etcd.
	producerIDReserveTimeout = 10 * time.Second
)

// producerIDAllocator hands out producer IDs from blocks reserved in etcd,
// so no two brokers ever give out the same ID. Like Kafka's
// RPCProducerIdManager it reserves a block in the background, one
// reservation at a time: the next block once 90% of the current one is
// handed out, or the first time a caller finds none. A caller with no block
// at hand waits up to wait for the reservation in flight and then fails
// with COORDINATOR_LOAD_IN_PROGRESS (a *kerr.Error in the chain, as
// coordinator/txn's ProducerIDAllocator expects); the reservation goes on
// and a retry finds its block.
type producerIDAllocator struct {
	mu struct {
		sync.Mutex
		// reserve reserves a block of size IDs and returns its first:
		// etcd's AllocateProducerIDBlock (tests replace it).
		reserve func(ctx context.Context, size int64) (int64, error)
		wait    time.Duration // producerIDBlockWait; tests shorten it
		// next, end: the block IDs are handed out from, [next, end).
		next, end int64
		// reserved is the first ID of a block reserved and not yet in
		// use, -1 if none.
		reserved int64
		// inFlight is closed when the reservation in flight ends; nil
		// when none is.
		inFlight chan struct{}
		// lastErr is the error of the last reservation, if it failed.
		lastErr error
	}
}

// errNoProducerIDBlock is the failure of a caller that found no producer
// ID block at hand.
var errNoProducerIDBlock = fmt.Errorf("broker: no producer ID block at hand: %w", kerr.CoordinatorLoadInProgress)

func newProducerIDAllocator(store *etcd.Store) *producerIDAllocator {
	a := &producerIDAllocator{}
	a.mu.reserve = store.AllocateProducerIDBlock
	a.mu.wait = producerIDBlockWait
	a.mu.reserved = -1
	return a
}

// Next hands out one producer ID (coordinator/txn's ProducerIDAllocator).
func (a *producerIDAllocator) Next(ctx context.Context) (int64, error) { return a.next(ctx) }

func (a *producerIDAllocator) next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	if id, ok := a.claimLocked(); ok {
		a.mu.Unlock()
		return id, nil
	}
	done, wait := a.reserveLocked(), a.mu.wait
	a.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.claimLocked(); ok {
		return id, nil
	}
	if a.mu.lastErr != nil {
		return -1, fmt.Errorf("%w: %w", errNoProducerIDBlock, a.mu.lastErr)
	}
	return -1, errNoProducerIDBlock
}

// claimLocked hands out the next ID of the current block, moving to the
// reserved block when the current one is used up, and starts reserving
// the next block once 90% of the current one is handed out. Call it with
// mu held.
func (a *producerIDAllocator) claimLocked() (int64, bool) {
	if a.mu.next >= a.mu.end && a.mu.reserved >= 0 {
		a.mu.next, a.mu.end, a.mu.reserved = a.mu.reserved, a.mu.reserved+producerIDBlockSize, -1
	}
	if a.mu.next >= a.mu.end {
		return -1, false
	}
	id := a.mu.next
	a.mu.next++
	if a.mu.end-a.mu.next <= producerIDBlockSize/10 && a.mu.reserved < 0 {
		a.reserveLocked()
	}
	return id, true
}

// reserveLocked starts reserving a block unless a reservation is in
// flight, and returns the channel closed when the one in flight ends. Call
// it with mu held.
func (a *producerIDAllocator) reserveLocked() <-chan struct{} {
	if a.mu.inFlight != nil {
		return a.mu.inFlight
	}
	done := make(chan struct{})
	a.mu.inFlight, a.mu.lastErr = done, nil
	reserve := a.mu.reserve
	go func() {
		defer close(done)
		// Not the caller's context: the reservation outlives the
		// request that started it.
		ctx, cancel := context.WithTimeout(context.Background(), producerIDReserveTimeout)
		first, err := reserve(ctx, producerIDBlockSize)
		cancel()
		a.mu.Lock()
		defer a.mu.Unlock()
		a.mu.inFlight = nil
		if err != nil {
			a.mu.lastErr = fmt.Errorf("reserve producer id block: %w", err)
			return
		}
		a.mu.reserved = first
	}()
	return done
}

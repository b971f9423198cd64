package etcd

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Controller is a won election: the right to write topics and partition
// leadership while the election key lives. Every write is a transaction that
// compares the key's CreateRevision with Epoch, so once the key is gone (the
// session expired, or Resign) every write fails with ErrNotController, even
// if this process has not noticed yet.
//
// The write methods are safe for concurrent use; a mutex serialises them so
// that the multi-transaction writes (CreateTopic, AddPartitions) of one
// controller never interleave. Reads go through the MetadataView.
type Controller struct {
	// Epoch is the controller epoch: the CreateRevision of the election key.
	// It grows with every election, like Kafka's controller epoch.
	Epoch int64
	// BrokerID is the id the controller campaigned with.
	BrokerID int32

	store    *Store
	election *concurrency.Election
	key      string

	mu sync.Mutex // serialises writes; held across the transactions of one write

	done     chan struct{} // closed once deposition is observed
	stopOnce sync.Once
	stop     context.CancelFunc // ends the deposition watch
}

// Campaign blocks until brokerID is elected controller or ctx ends (then it
// withdraws its candidacy). The election key lives under session's lease:
// pass Registration.Session() to lose controllership together with the
// broker registration, as in ZooKeeper mode.
func (s *Store) Campaign(ctx context.Context, brokerID int32, session *concurrency.Session) (*Controller, error) {
	e := concurrency.NewElection(session, s.controllerPrefix())
	if err := e.Campaign(ctx, strconv.FormatInt(int64(brokerID), 10)); err != nil {
		return nil, fmt.Errorf("etcd: campaign for controller as broker %d: %w", brokerID, err)
	}
	wctx, stop := context.WithCancel(context.Background())
	c := &Controller{
		Epoch:    e.Rev(),
		BrokerID: brokerID,
		store:    s,
		election: e,
		key:      e.Key(),
		done:     make(chan struct{}),
		stop:     stop,
	}
	go c.watchDeposition(wctx, session)
	return c, nil
}

// Done is closed when the controller is known to be deposed: its election key
// was deleted or its session ended. Writes fail with ErrNotController from
// that moment, and usually a little earlier.
func (c *Controller) Done() <-chan struct{} { return c.done }

// Resign deletes the election key so that another candidate takes over at
// once (clean shutdown), and stops the deposition watch.
func (c *Controller) Resign(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.election.Resign(ctx)
	c.stopOnce.Do(c.stop)
	if err != nil {
		return fmt.Errorf("etcd: resign controller epoch %d: %w", c.Epoch, err)
	}
	return nil
}

// watchDeposition closes c.done when the election key disappears or the
// session ends. It owns nothing but c.done.
func (c *Controller) watchDeposition(ctx context.Context, session *concurrency.Session) {
	defer close(c.done)
	cli := c.store.cli
	rev := c.Epoch
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, c.key, clientv3.WithRev(rev))
		deposed, ok := false, true
		for ok && !deposed {
			var resp clientv3.WatchResponse
			select {
			case <-session.Done():
				cancel()
				return
			case resp, ok = <-wch:
			}
			if !ok || resp.Err() != nil {
				ok = false
				break
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != c.Epoch {
					deposed = true
				}
			}
		}
		cancel()
		if deposed {
			return
		}
		// The watch broke (compaction, lost leader): look at the key itself,
		// then watch again from there.
		for ctx.Err() == nil {
			gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := cli.Get(gctx, c.key)
			gcancel()
			if err == nil {
				if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != c.Epoch {
					return
				}
				rev = resp.Header.Revision + 1
				break
			}
			select {
			case <-ctx.Done():
			case <-session.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// fence is the compare every controller write carries.
func (c *Controller) fence() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(c.key), "=", c.Epoch)
}

// txn commits a fenced transaction: if the fence and cmps hold, ops run.
// Otherwise it returns ErrNotController if the fence failed, or the failed
// response (Succeeded false) whose Responses hold a Get of each key in
// elseKeys, in order, for the caller to tell which compare failed.
func (c *Controller) txn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op, elseKeys ...string) (*clientv3.TxnResponse, error) {
	elseOps := make([]clientv3.Op, 0, len(elseKeys)+1)
	elseOps = append(elseOps, clientv3.OpGet(c.key))
	for _, k := range elseKeys {
		elseOps = append(elseOps, clientv3.OpGet(k))
	}
	resp, err := c.store.cli.Txn(ctx).
		If(append([]clientv3.Cmp{c.fence()}, cmps...)...).
		Then(ops...).
		Else(elseOps...).
		Commit()
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		return resp, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != c.Epoch {
		return nil, fmt.Errorf("%w: epoch %d (broker %d)", ErrNotController, c.Epoch, c.BrokerID)
	}
	resp.Responses = resp.Responses[1:]
	return resp, nil
}

// exists reports whether the i-th else-Get of a failed txn found its key.
func exists(resp *clientv3.TxnResponse, i int) bool {
	return len(resp.Responses[i].GetResponseRange().Kvs) > 0
}

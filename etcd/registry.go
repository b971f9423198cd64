package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultSessionTimeout is Kafka's broker.session.timeout.ms default.
const DefaultSessionTimeout = 9 * time.Second

// minLeaseTTL is the shortest lease the store asks for. etcd's TTL has one-
// second granularity and a 1 s lease could expire between two keep-alives.
const minLeaseTTL = 2

// leaseSeconds converts a session timeout to an etcd TTL: whole seconds,
// rounded up, at least minLeaseTTL.
func leaseSeconds(ttl time.Duration) int {
	if ttl <= 0 {
		ttl = DefaultSessionTimeout
	}
	s := int((ttl + time.Second - 1) / time.Second)
	return max(s, minLeaseTTL)
}

// Registration is a live brokers/<id> key bound to a lease that a background
// keep-alive (owned by the embedded concurrency.Session) refreshes.
type Registration struct {
	session *concurrency.Session
	key     string
	epoch   int64
	// mu serialises the rare rewrites of the value (shutting down, offline
	// dirs), so that one does not undo the other; it is held across their
	// etcd write and by nothing else.
	mu struct {
		sync.Mutex
		info BrokerInfo // the registered value
	}
}

// RegisterBroker writes brokers/<id> under a new lease of ttl (rounded up to
// whole seconds, at least 2 s; 0 means DefaultSessionTimeout), like a ZooKeeper
// ephemeral node. If another live lease holds the key — a running broker with
// the same node.id, or this broker's previous incarnation whose lease has not
// yet expired — it fails with ErrBrokerIDInUse; the caller may retry after
// the TTL. An empty info.Incarnation is filled with a random one.
func (s *Store) RegisterBroker(ctx context.Context, info BrokerInfo, ttl time.Duration) (*Registration, error) {
	if info.ID < 0 {
		return nil, fmt.Errorf("etcd: register broker: invalid id %d", info.ID)
	}
	if info.Incarnation == "" {
		info.Incarnation = FormatUUID(NewUUID())
	}
	val, err := encodeJSON("broker", info)
	if err != nil {
		return nil, err
	}
	secs := leaseSeconds(ttl)
	lease, err := s.cli.Grant(ctx, int64(secs))
	if err != nil {
		return nil, fmt.Errorf("etcd: register broker %d: grant lease: %w", info.ID, err)
	}
	// The session keeps the lease alive with the client's context, so it
	// outlives ctx; it is closed on every failure path below.
	session, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(secs))
	if err != nil {
		s.revoke(lease.ID)
		return nil, fmt.Errorf("etcd: register broker %d: keep lease alive: %w", info.ID, err)
	}
	key := s.brokerKey(info.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease.ID))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		s.closeSession(session)
		return nil, fmt.Errorf("etcd: register broker %d: %w", info.ID, err)
	}
	if !resp.Succeeded {
		s.closeSession(session)
		return nil, s.brokerInUse(ctx, info.ID, resp)
	}
	reg := &Registration{session: session, key: key, epoch: resp.Header.Revision}
	reg.mu.info = info
	return reg, nil
}

// brokerInUse builds the ErrBrokerIDInUse error, saying who holds the id and
// for how long, so an operator can tell a duplicate node.id from a restart
// inside the session timeout.
func (s *Store) brokerInUse(ctx context.Context, id int32, resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("%w: broker %d (key deleted meanwhile, retry)", ErrBrokerIDInUse, id)
	}
	holder, _ := decodeBroker(kvs[0].Value)
	detail := "no lease"
	if l := clientv3.LeaseID(kvs[0].Lease); l != clientv3.NoLease {
		detail = fmt.Sprintf("lease %x", int64(l))
		if ttl, err := s.cli.TimeToLive(ctx, l); err == nil && ttl.TTL > 0 {
			detail += fmt.Sprintf(" expires in %ds", ttl.TTL)
		}
	}
	return fmt.Errorf("%w: broker %d is registered by incarnation %q (%s)", ErrBrokerIDInUse, id, holder.Incarnation, detail)
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil {
		s.log.Debug("revoke lease", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
	}
}

func (s *Store) closeSession(session *concurrency.Session) {
	session.Orphan()
	s.revoke(session.Lease())
}

// Epoch is the registration's broker epoch (see BrokerInfo.Epoch); it is also
// the revision of the commit, for MetadataView.WaitForRevision.
func (r *Registration) Epoch() int64 { return r.epoch }

// Session is the lease session behind the registration. Campaigning with it
// ties controllership to the broker's liveness, as in ZooKeeper mode.
func (r *Registration) Session() *concurrency.Session { return r.session }

// Lost is closed when the lease can no longer be kept alive: it expired
// (etcd unreachable for a whole TTL), was revoked, or Close was called. The
// key is gone (or about to be) and the broker must stop acting as a member.
func (r *Registration) Lost() <-chan struct{} { return r.session.Done() }

// SetShuttingDown marks the registration as being in controlled shutdown
// (BrokerInfo.ShuttingDown), rewriting brokers/<id> under the same lease so
// that the key keeps its CreateRevision (the broker epoch) and still
// vanishes with the lease. It fails if the key is no longer this
// registration's: the lease expired, or another incarnation holds the id.
// Returns the commit revision, for MetadataView.WaitForRevision.
func (r *Registration) SetShuttingDown(ctx context.Context) (int64, error) {
	return r.update(ctx, "mark shutting down", func(info *BrokerInfo) { info.ShuttingDown = true })
}

// SetOfflineDirs records the log dirs this broker took offline, with the
// partitions that were in them (BrokerInfo.OfflineDirs), in the same way
// as SetShuttingDown: the controller moves those replicas' leaderships to
// other brokers and takes them out of their ISRs.
func (r *Registration) SetOfflineDirs(ctx context.Context, dirs []OfflineDir) (int64, error) {
	return r.update(ctx, "record offline log dirs", func(info *BrokerInfo) { info.OfflineDirs = dirs })
}

// update rewrites brokers/<id> with change applied, under the same lease
// and only while the key is still this registration's.
func (r *Registration) update(ctx context.Context, what string, change func(*BrokerInfo)) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := r.mu.info
	change(&info)
	val, err := encodeJSON("broker", info)
	if err != nil {
		return 0, err
	}
	cli := r.session.Client()
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(r.key), "=", r.epoch)).
		Then(clientv3.OpPut(r.key, val, clientv3.WithLease(r.session.Lease()))).
		Commit()
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: %s %s: %w", what, r.key, err)
	case !resp.Succeeded:
		return 0, fmt.Errorf("etcd: %s %s: registration (epoch %d) is gone", what, r.key, r.epoch)
	}
	r.mu.info = info
	return resp.Header.Revision, nil
}

// Close stops the keep-alive and revokes the lease, deleting the key at
// once (clean shutdown). If ctx ends first the lease is left to expire.
func (r *Registration) Close(ctx context.Context) error {
	r.session.Orphan()
	if _, err := r.session.Client().Revoke(ctx, r.session.Lease()); err != nil {
		return fmt.Errorf("etcd: unregister %s: %w", r.key, err)
	}
	return nil
}

// AllocateBrokerID hands out a broker id for node.id=-1 from a cluster-wide
// counter (broker-ids/next) starting at 1001, as Kafka generates ids above
// reserved.broker.max.id. Ids are never reused.
func (s *Store) AllocateBrokerID(ctx context.Context) (int32, error) {
	id, err := s.allocate(ctx, s.prefix+brokerIDsKey, firstAutoBroker, 1, math.MaxInt32)
	if err != nil {
		return 0, fmt.Errorf("etcd: allocate broker id: %w", err)
	}
	return int32(id), nil
}

// DefaultProducerIDBlockSize is the block size Kafka's controller hands out.
const DefaultProducerIDBlockSize = 1000

// AllocateProducerIDBlock reserves size producer IDs [first, first+size)
// for the caller by compare-and-swap on producer-ids/next; concurrent callers
// never get overlapping blocks. The first block starts at 0, as in Kafka.
func (s *Store) AllocateProducerIDBlock(ctx context.Context, size int64) (first int64, err error) {
	if size <= 0 {
		return 0, fmt.Errorf("etcd: allocate producer ids: invalid block size %d", size)
	}
	first, err = s.allocate(ctx, s.prefix+producerIDsKey, 0, size, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("etcd: allocate producer ids: %w", err)
	}
	return first, nil
}

// allocate advances the counter at key by size and returns its old value
// (start if the key is absent). Losing the compare-and-swap to another
// allocator is expected under contention, so it retries until ctx ends; every
// round some allocator wins. Values must stay <= limit.
func (s *Store) allocate(ctx context.Context, key string, start, size, limit int64) (int64, error) {
	get, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	kvs := get.Kvs
	for {
		next, cmp := start, clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(kvs) > 0 {
			var v counterValue
			if err := json.Unmarshal(kvs[0].Value, &v); err != nil {
				return 0, fmt.Errorf("decode %s: %w", key, err)
			}
			next, cmp = v.Next, clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
		}
		if next < start || next > limit-size+1 {
			return 0, fmt.Errorf("%s: counter at %d cannot advance by %d (limit %d)", key, next, size, limit)
		}
		val, err := encodeJSON(key, counterValue{Next: next + size})
		if err != nil {
			return 0, err
		}
		resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, val)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return next, nil
		}
		kvs = resp.Responses[0].GetResponseRange().Kvs
	}
}

// EvictBroker revokes the lease that holds broker id's registration, so that
// the id can be registered again at once. Only safe when the caller knows the
// holder is dead — e.g. a broker restarting on its own embedded etcd, whose
// previous incarnation's lease etcd kept alive across the restart.
func (s *Store) EvictBroker(ctx context.Context, id int32) error {
	resp, err := s.cli.Get(ctx, s.brokerKey(id))
	if err != nil {
		return fmt.Errorf("etcd: read registration of broker %d: %w", id, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == int64(clientv3.NoLease) {
		return nil
	}
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		return fmt.Errorf("etcd: revoke stale registration of broker %d: %w", id, err)
	}
	return nil
}

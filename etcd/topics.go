package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CreateTopic writes a new topic: partitions/<name>/<p> for every partition,
// then topics/<name>. It returns the revision of the final commit, at which
// the topic becomes visible (MetadataView.WaitForRevision).
//
// A topic can have more partitions than etcd accepts operations in one
// transaction, so the partition keys go in chunks of maxOpsPerTxn and the
// topic key last, each transaction fenced and conditional on the topic key
// still being absent. Until the topic key exists, readers ignore its
// partition keys; a controller deposed half-way leaves only such ignored
// keys, which the next CreateTopic of the name first deletes.
//
// Errors: ErrTopicExists, ErrNotController.
func (c *Controller) CreateTopic(ctx context.Context, t TopicSpec, parts []PartitionState) (int64, error) {
	if err := checkTopicName(t.Name); err != nil {
		return 0, err
	}
	if t.ID == ([16]byte{}) {
		return 0, fmt.Errorf("etcd: create topic %s: zero topic id", t.Name)
	}
	if len(t.Replicas) == 0 || len(parts) != len(t.Replicas) {
		return 0, fmt.Errorf("etcd: create topic %s: %d assignments, %d partition states",
			t.Name, len(t.Replicas), len(parts))
	}
	if err := checkAssignment(t.Name, 0, t.Replicas); err != nil {
		return 0, err
	}
	topicVal, err := encodeTopic(t)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	s := c.store
	tkey := s.topicKey(t.Name)
	absent := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(tkey), "=", 0)}
	fail := func(resp *clientv3.TxnResponse, err error) (int64, error) {
		if err != nil {
			return 0, fmt.Errorf("etcd: create topic %s: %w", t.Name, err)
		}
		return 0, fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
	}

	// Leftovers of an interrupted creation (or of a deletion racing a
	// deposed controller) must not show through the new topic.
	pfx := s.partitionsPrefix(t.Name)
	resp, err := c.txn(ctx, absent, []clientv3.Op{clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())}, tkey)
	if err != nil || !resp.Succeeded {
		return fail(resp, err)
	}
	if resp.Responses[0].GetResponseRange().Count > 0 {
		resp, err = c.txn(ctx, absent, []clientv3.Op{clientv3.OpDelete(pfx, clientv3.WithPrefix())}, tkey)
		if err != nil || !resp.Succeeded {
			return fail(resp, err)
		}
	}

	ops, err := c.partitionOps(t.Name, 0, parts)
	if err != nil {
		return 0, err
	}
	for len(ops) > maxOpsPerTxn {
		resp, err = c.txn(ctx, absent, ops[:maxOpsPerTxn], tkey)
		if err != nil || !resp.Succeeded {
			return fail(resp, err)
		}
		ops = ops[maxOpsPerTxn:]
	}
	resp, err = c.txn(ctx, absent, append(ops, clientv3.OpPut(tkey, topicVal)), tkey)
	if err != nil || !resp.Succeeded {
		return fail(resp, err)
	}
	return resp.Header.Revision, nil
}

// partitionOps returns a put of partitions/<topic>/<first+i> for each state.
func (c *Controller) partitionOps(topic string, first int, states []PartitionState) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(states)+1)
	for i, st := range states {
		val, err := encodeJSON("partition state", st)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(c.store.partitionKey(topic, int32(first+i)), val))
	}
	return ops, nil
}

// DeleteTopic removes topics/<name> and every partitions/<name>/ key in one
// fenced transaction and returns its revision. Brokers watching the prefix
// delete their logs when the topic disappears from the image.
//
// Errors: ErrUnknownTopic, ErrNotController.
func (c *Controller) DeleteTopic(ctx context.Context, name string) (int64, error) {
	if err := checkTopicName(name); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.store
	tkey := s.topicKey(name)
	resp, err := c.txn(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(tkey), ">", 0)},
		[]clientv3.Op{clientv3.OpDelete(tkey), clientv3.OpDelete(s.partitionsPrefix(name), clientv3.WithPrefix())},
	)
	if err != nil {
		return 0, fmt.Errorf("etcd: delete topic %s: %w", name, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return resp.Header.Revision, nil
}

// AddPartitions appends partitions to a topic: assignments[i] and states[i]
// describe partition n+i, where n is the current count. Like CreateTopic it
// writes the partition keys first (in chunks) and the grown topic value
// last; every transaction compares the topic key's ModRevision with the one
// read at the start, so a concurrent change fails with ErrConflict. Returns
// the revision of the topic update.
//
// Errors: ErrUnknownTopic, ErrConflict, ErrNotController.
func (c *Controller) AddPartitions(ctx context.Context, name string, assignments [][]int32, states []PartitionState) (int64, error) {
	if err := checkTopicName(name); err != nil {
		return 0, err
	}
	if len(assignments) == 0 || len(assignments) != len(states) {
		return 0, fmt.Errorf("etcd: add partitions to %s: %d assignments, %d partition states",
			name, len(assignments), len(states))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.store
	tkey := s.topicKey(name)
	get, err := s.cli.Get(ctx, tkey)
	if err != nil {
		return 0, fmt.Errorf("etcd: add partitions to %s: %w", name, err)
	}
	if len(get.Kvs) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	spec, err := decodeTopic(name, get.Kvs[0].Value)
	if err != nil {
		return 0, err
	}
	first := len(spec.Replicas)
	if err := checkAssignment(name, first, assignments); err != nil {
		return 0, err
	}
	spec.Replicas = append(spec.Replicas[:first:first], assignments...)
	topicVal, err := encodeTopic(spec)
	if err != nil {
		return 0, err
	}
	unchanged := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(tkey), "=", get.Kvs[0].ModRevision)}
	fail := func(resp *clientv3.TxnResponse, err error) (int64, error) {
		switch {
		case err != nil:
			return 0, fmt.Errorf("etcd: add partitions to %s: %w", name, err)
		case !exists(resp, 0):
			return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		default:
			return 0, fmt.Errorf("%w: topic %s changed while adding partitions", ErrConflict, name)
		}
	}
	ops, err := c.partitionOps(name, first, states)
	if err != nil {
		return 0, err
	}
	for len(ops) > maxOpsPerTxn {
		resp, err := c.txn(ctx, unchanged, ops[:maxOpsPerTxn], tkey)
		if err != nil || !resp.Succeeded {
			return fail(resp, err)
		}
		ops = ops[maxOpsPerTxn:]
	}
	resp, err := c.txn(ctx, unchanged, append(ops, clientv3.OpPut(tkey, topicVal)), tkey)
	if err != nil || !resp.Succeeded {
		return fail(resp, err)
	}
	return resp.Header.Revision, nil
}

// UpdatePartition writes a partition's state as the controller (leader
// moves). With expectModRev > 0 it is a compare-and-swap on the partition
// key, so a concurrent ISR change by the leader is not overwritten with a
// stale ISR (ErrConflict: re-read the image and decide again); 0 writes
// unconditionally. Returns the commit revision, which is also the new
// ModRevision of the partition key.
//
// Errors: ErrUnknownTopic, ErrUnknownPartition, ErrConflict, ErrNotController.
func (c *Controller) UpdatePartition(ctx context.Context, topic string, p int32, expectModRev int64, st PartitionState) (int64, error) {
	if err := checkTopicName(topic); err != nil {
		return 0, err
	}
	val, err := encodeJSON("partition state", st)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.store
	tkey, pkey := s.topicKey(topic), s.partitionKey(topic, p)
	pcmp := clientv3.Compare(clientv3.CreateRevision(pkey), ">", 0)
	if expectModRev > 0 {
		pcmp = clientv3.Compare(clientv3.ModRevision(pkey), "=", expectModRev)
	}
	resp, err := c.txn(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(tkey), ">", 0), pcmp},
		[]clientv3.Op{clientv3.OpPut(pkey, val)},
		tkey, pkey)
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: update %s-%d: %w", topic, p, err)
	case resp.Succeeded:
		return resp.Header.Revision, nil
	case !exists(resp, 0):
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	case !exists(resp, 1):
		return 0, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, p)
	default:
		return 0, fmt.Errorf("%w: %s-%d changed since revision %d", ErrConflict, topic, p, expectModRev)
	}
}

// CompareAndSetPartition is the partition leader's ISR change: it writes st
// only if the partition key's ModRevision is still expectModRev (from the
// image, or the previous call's result), so a leader that has been replaced,
// or that raced the controller, cannot overwrite newer state. It returns the
// key's new ModRevision.
//
// Errors: ErrUnknownTopic (the partition key is gone), ErrConflict.
func (s *Store) CompareAndSetPartition(ctx context.Context, topic string, p int32, expectModRev int64, st PartitionState) (int64, error) {
	if err := checkTopicName(topic); err != nil {
		return 0, err
	}
	if expectModRev <= 0 {
		return 0, fmt.Errorf("etcd: compare-and-set %s-%d: invalid revision %d", topic, p, expectModRev)
	}
	val, err := encodeJSON("partition state", st)
	if err != nil {
		return 0, err
	}
	pkey := s.partitionKey(topic, p)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(pkey), "=", expectModRev)).
		Then(clientv3.OpPut(pkey, val)).
		Else(clientv3.OpGet(pkey, clientv3.WithKeysOnly())).
		Commit()
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: compare-and-set %s-%d: %w", topic, p, err)
	case resp.Succeeded:
		return resp.Header.Revision, nil
	case !exists(resp, 0):
		return 0, fmt.Errorf("%w: %s (partition %d gone)", ErrUnknownTopic, topic, p)
	default:
		return 0, fmt.Errorf("%w: %s-%d changed since revision %d", ErrConflict, topic, p, expectModRev)
	}
}

// SetTopicConfigs replaces a topic's config overrides (AlterConfigs,
// IncrementalAlterConfigs: the caller merges against Topic.Configs). Any
// broker may call it, not only the controller: it is a compare-and-swap on
// the topic key's ModRevision (Topic.ModRevision in the image), so it can
// neither undo a concurrent AddPartitions nor resurrect a deleted topic.
// Returns the commit revision.
//
// Errors: ErrUnknownTopic, ErrConflict.
func (s *Store) SetTopicConfigs(ctx context.Context, name string, expectModRev int64, configs map[string]string) (int64, error) {
	if err := checkTopicName(name); err != nil {
		return 0, err
	}
	tkey := s.topicKey(name)
	get, err := s.cli.Get(ctx, tkey)
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: set configs of %s: %w", name, err)
	case len(get.Kvs) == 0:
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	case get.Kvs[0].ModRevision != expectModRev:
		return 0, fmt.Errorf("%w: topic %s changed since revision %d", ErrConflict, name, expectModRev)
	}
	spec, err := decodeTopic(name, get.Kvs[0].Value)
	if err != nil {
		return 0, err
	}
	spec.Configs = configs
	val, err := encodeTopic(spec)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(tkey), "=", expectModRev)).
		Then(clientv3.OpPut(tkey, val)).
		Else(clientv3.OpGet(tkey, clientv3.WithKeysOnly())).
		Commit()
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: set configs of %s: %w", name, err)
	case resp.Succeeded:
		return resp.Header.Revision, nil
	case !exists(resp, 0):
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	default:
		return 0, fmt.Errorf("%w: topic %s changed since revision %d", ErrConflict, name, expectModRev)
	}
}

package etcd

import "errors"

// Sentinel errors, checked with errors.Is. Returned errors wrap them with the
// topic, partition or broker they concern.
var (
	// ErrTopicExists: CreateTopic found topics/<name> already present.
	ErrTopicExists = errors.New("etcd: topic already exists")
	// ErrUnknownTopic: the topic key is absent (never created, or deleted).
	ErrUnknownTopic = errors.New("etcd: unknown topic")
	// ErrUnknownPartition: the topic exists but the partition key does not.
	ErrUnknownPartition = errors.New("etcd: unknown partition")
	// ErrNotController: the caller's election key is gone or was recreated,
	// so it has been deposed (or its session expired) and may not write.
	ErrNotController = errors.New("etcd: not the controller")
	// ErrBrokerIDInUse: brokers/<id> is held by another live lease.
	ErrBrokerIDInUse = errors.New("etcd: broker id in use")
	// ErrConflict: a compare-and-swap lost against a concurrent writer; re-read
	// and retry if the change still makes sense.
	ErrConflict = errors.New("etcd: concurrent modification")
	// ErrViewClosed: the MetadataView's context ended.
	ErrViewClosed = errors.New("etcd: metadata view closed")
)

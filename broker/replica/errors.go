package replica

import "errors"

// The partition's own errors. Like storage's and protocol/batch's, they are
// sentinels, wrapped with context where there is any; the broker turns them
// into Kafka error codes in one place (broker/errors.go), so nothing in this
// package knows the wire codes.
var (
	// ErrClosed is returned by a partition that has been closed or deleted.
	ErrClosed = errors.New("replica: partition closed")
	// ErrNotFollower is returned by follower operations on the leader.
	ErrNotFollower = errors.New("replica: partition is not a follower")
	// ErrNotLeader is returned by leader operations on a follower, and to
	// acks=all produces waiting when leadership moves away.
	ErrNotLeader = errors.New("replica: not the partition's leader")
	// ErrFencedLeaderEpoch: the caller's leader epoch is older than the
	// partition's (KIP-320); ErrUnknownLeaderEpoch: newer.
	ErrFencedLeaderEpoch  = errors.New("replica: leader epoch older than the partition's")
	ErrUnknownLeaderEpoch = errors.New("replica: leader epoch newer than the partition's")
	// ErrNotReplica: a follower fetch from a broker that is not one of the
	// partition's replicas.
	ErrNotReplica = errors.New("replica: fetching broker is not a replica")
	// ErrNotEnoughReplicas: the ISR is below min.insync.replicas before an
	// acks=all append; ErrNotEnoughReplicasAfterAppend: it fell below while
	// the append waited for the ISR.
	ErrNotEnoughReplicas            = errors.New("replica: in-sync replicas below min.insync.replicas")
	ErrNotEnoughReplicasAfterAppend = errors.New("replica: in-sync replicas fell below min.insync.replicas after the append")
	// ErrTimedOut: an acks=all append was not replicated before the
	// request's timeout.
	ErrTimedOut = errors.New("replica: timed out waiting for the in-sync replicas")
)

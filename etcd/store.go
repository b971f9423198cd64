package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootPrefix is the root of every kbroker key in etcd.
const RootPrefix = "/kbroker/"

// ClusterIDKey holds the cluster ID (a bare 22-character string, not JSON).
const ClusterIDKey = RootPrefix + "cluster-id"

// DialTimeout bounds Dial: how long to wait for a first answer from etcd.
const DialTimeout = 5 * time.Second

// maxOpsPerTxn is how many operations the store puts in one transaction.
// etcd rejects a transaction with more than --max-txn-ops operations
// (default 128); 100 leaves room for the compares and the final topic put.
const maxOpsPerTxn = 100

// Dial connects to an etcd cluster and checks, within DialTimeout, that it
// answers a linearizable read, so that a wrong address fails at startup
// rather than at the first request. The client logs through slog.Default().
func Dial(endpoints []string) (*clientv3.Client, error) {
	return dial(endpoints, DialTimeout)
}

func dial(endpoints []string, timeout time.Duration) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints to dial")
	}
	where := strings.Join(endpoints, ",")
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          timeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		Logger:               newZapLogger(slog.Default(), "etcd-client", nil),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: dial %s: %w", where, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := cli.Get(ctx, ClusterIDKey, clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd: no answer from %s within %s (is etcd running there? check etcd.endpoints): %w",
			where, timeout, err)
	}
	return cli, nil
}

// Store is typed access to one kbroker cluster's keys. It holds no mutable
// state of its own; every method is safe for concurrent use.
type Store struct {
	cli       *clientv3.Client
	clusterID string
	prefix    string // RootPrefix + clusterID + "/"
	log       *slog.Logger
}

// OpenStore reads the cluster ID, creating it on first use (a compare-and-
// swap, so brokers racing on an empty etcd agree on one ID).
func OpenStore(ctx context.Context, cli *clientv3.Client) (*Store, error) {
	id := FormatUUID(NewUUID())
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ClusterIDKey), "=", 0)).
		Then(clientv3.OpPut(ClusterIDKey, id)).
		Else(clientv3.OpGet(ClusterIDKey)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: read or create cluster id: %w", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, fmt.Errorf("etcd: cluster id vanished between compare and read: %w", ErrConflict)
		}
		id = string(kvs[0].Value)
		if _, err := ParseUUID(id); err != nil {
			return nil, fmt.Errorf("etcd: %s holds %q, not a cluster id: %w", ClusterIDKey, id, err)
		}
	}
	return &Store{
		cli:       cli,
		clusterID: id,
		prefix:    RootPrefix + id + "/",
		log:       slog.Default().With("component", "etcd-store"),
	}, nil
}

// ClusterID is the cluster's ID, as Kafka reports it in Metadata responses.
func (s *Store) ClusterID() string { return s.clusterID }

// Key names, relative to Prefix; see the package doc for the layout.
const (
	brokersDir      = "brokers/"
	topicsDir       = "topics/"
	partitionsDir   = "partitions/"
	controllerDir   = "controller" // election prefix; concurrency appends "/"
	producerIDsKey  = "producer-ids/next"
	brokerIDsKey    = "broker-ids/next"
	firstAutoBroker = 1001 // Kafka's reserved.broker.max.id (1000) + 1
)

func (s *Store) brokerKey(id int32) string {
	return s.prefix + brokersDir + strconv.FormatInt(int64(id), 10)
}

func (s *Store) topicKey(name string) string { return s.prefix + topicsDir + name }

func (s *Store) partitionsPrefix(topic string) string {
	return s.prefix + partitionsDir + topic + "/"
}

func (s *Store) partitionKey(topic string, p int32) string {
	return s.partitionsPrefix(topic) + strconv.FormatInt(int64(p), 10)
}

func (s *Store) controllerPrefix() string { return s.prefix + controllerDir }

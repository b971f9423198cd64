package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/txn"
	"github.com/kbroker/kbroker/protocol"
)

// interBroker sends the requests brokers make of each other — transaction
// markers to partition leaders, implicit partition adds to a remote
// transaction coordinator — over the inter-broker listener with franz-go.
type interBroker struct {
	b    *Broker
	once sync.Once
	cl   *kgo.Client
	err  error
}

// interBrokerClientIDPrefix starts the client ID of requests brokers send
// each other; a forwarded admin request carrying it is never forwarded
// again.
const interBrokerClientIDPrefix = "kbroker-"

func (ib *interBroker) client() (*kgo.Client, error) {
	ib.once.Do(func() {
		info, ok := ib.b.view.Image().Brokers[ib.b.nodeID]
		if !ok {
			ib.err = fmt.Errorf("broker %d is not registered", ib.b.nodeID)
			return
		}
		ep, _ := ib.b.advertisedEndpoint(info, ib.b.cfg.InterBrokerListener())
		ib.cl, ib.err = kgo.NewClient(
			kgo.SeedBrokers(net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port)))),
			kgo.ClientID(interBrokerClientIDPrefix+strconv.Itoa(int(ib.b.nodeID))),
		)
	})
	return ib.cl, ib.err
}

// forward sends req to broker id at exactly the version its client used,
// on a connection of its own, and returns the answer: fields differ between
// versions (DeleteTopics v6 names topics in Topics, v5 in TopicNames), so
// letting franz-go pick its own version would change the request.
func (ib *interBroker) forward(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	info, ok := ib.b.view.Image().Brokers[id]
	if !ok {
		return nil, fmt.Errorf("broker %d is not registered", id)
	}
	ep, ok := ib.b.advertisedEndpoint(info, ib.b.cfg.InterBrokerListener())
	if !ok {
		return nil, fmt.Errorf("broker %d has no %s endpoint", id, ib.b.cfg.InterBrokerListener())
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))))
	if err != nil {
		return nil, fmt.Errorf("dial broker %d: %w", id, err)
	}
	defer nc.Close()
	if deadline, ok := ctx.Deadline(); ok {
		nc.SetDeadline(deadline)
	}
	resp, err := roundTrip(nc, interBrokerClientIDPrefix+strconv.Itoa(int(ib.b.nodeID)), req, int32(ib.b.cfg.SocketRequestMaxBytes))
	if err != nil {
		return nil, fmt.Errorf("broker %d: %w", id, err)
	}
	return resp, nil
}

// roundTrip sends req on nc at exactly the version set on it and decodes
// the answer at that version (franz-go would pick a version of its own).
func roundTrip(nc net.Conn, clientID string, req kmsg.Request, maxFrame int32) (kmsg.Response, error) {
	const corrID = 1
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, req, corrID)
	if _, err := nc.Write(frame); err != nil {
		return nil, fmt.Errorf("send %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	body, err := protocol.ReadFrame(bufio.NewReader(nc), maxFrame, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	skip := 4 // correlation ID
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		skip = 5 // and an empty tagged-field section
	}
	if len(body) < skip || int32(binary.BigEndian.Uint32(body)) != corrID {
		return nil, fmt.Errorf("%s answer: bad response header", kmsg.NameForKey(req.Key()))
	}
	if err := resp.ReadFrom(body[skip:]); err != nil {
		return nil, fmt.Errorf("decode %s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

func (ib *interBroker) close() {
	if ib.cl != nil {
		ib.cl.Close()
	}
}

// writeMarkersRemote sends markers to the broker leading their partitions.
// Any partition error fails the call; the coordinator retries.
func (ib *interBroker) writeMarkersRemote(ctx context.Context, leader int32, markers []txn.Marker) error {
	cl, err := ib.client()
	if err != nil {
		return err
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	for _, mk := range markers {
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = mk.ProducerID, mk.ProducerEpoch, mk.Commit, mk.CoordinatorEpoch
		t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		t.Topic, t.Partitions = mk.Topic, []int32{mk.Partition}
		m.Topics = append(m.Topics, t)
		req.Markers = append(req.Markers, m)
	}
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil {
		return fmt.Errorf("write markers on broker %d: %w", leader, err)
	}
	for _, m := range resp.Markers {
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("marker for %s-%d on broker %d: %w", t.Topic, p.Partition, leader, err)
				}
			}
		}
	}
	return nil
}

// addPartitionsRemote asks a transaction coordinator on another broker to
// add partitions to a transactions-v2 transaction (AddPartitionsToTxn v5),
// or with verifyOnly whether they are in the transaction (KIP-890 part 1),
// as a partition leader does in Kafka.
func (ib *interBroker) addPartitionsRemote(ctx context.Context, coordinator int32, txnID string, pid int64, epoch int16, parts map[string][]int32, verifyOnly bool) int16 {
	cl, err := ib.client()
	if err != nil {
		return kerr.CoordinatorNotAvailable.Code
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Transactions = append(req.Transactions, txnPartitions(txnID, pid, epoch, parts, verifyOnly))
	resp, err := req.RequestWith(ctx, cl.Broker(int(coordinator)))
	if err != nil {
		return kerr.CoordinatorNotAvailable.Code
	}
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	for _, rt := range resp.Transactions {
		if code := firstPartitionCode(rt); code != 0 {
			return code
		}
	}
	return 0
}

// txnPartitions is one transaction's entry of an AddPartitionsToTxn v4+
// request, as partition leaders send it.
func txnPartitions(txnID string, pid int64, epoch int16, parts map[string][]int32, verifyOnly bool) kmsg.AddPartitionsToTxnRequestTransaction {
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = txnID, pid, epoch, verifyOnly
	for topic, ps := range parts {
		t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		t.Topic, t.Partitions = topic, ps
		tx.Topics = append(tx.Topics, t)
	}
	return tx
}

// firstPartitionCode is the first partition error of a transaction's
// AddPartitionsToTxn answer, 0 if there is none.
func firstPartitionCode(res kmsg.AddPartitionsToTxnResponseTransaction) int16 {
	for _, rt := range res.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				return p.ErrorCode
			}
		}
	}
	return 0
}

// addToTransaction adds partitions to a transactions-v2 transaction through
// its coordinator, local or remote, and returns the coordinator's code.
func (b *Broker) addToTransaction(ctx context.Context, txnID string, pid int64, epoch int16, parts map[string][]int32) int16 {
	return b.askTransactionCoordinator(ctx, txnID, pid, epoch, parts, false)
}

// verifyInTransaction asks the transaction coordinator, local or remote,
// whether the partitions are in the producer's transaction (KIP-890 part
// 1) and returns its first error code, 0 if they all are.
func (b *Broker) verifyInTransaction(ctx context.Context, txnID string, pid int64, epoch int16, parts map[string][]int32) int16 {
	return b.askTransactionCoordinator(ctx, txnID, pid, epoch, parts, true)
}

func (b *Broker) askTransactionCoordinator(ctx context.Context, txnID string, pid int64, epoch int16, parts map[string][]int32, verifyOnly bool) int16 {
	shard, kerrErr := b.txns.shardFor(ctx, txnID)
	if kerrErr == nil && !verifyOnly {
		return shard.AddPartitionsForProduce(ctx, txnID, pid, epoch, parts)
	}
	if kerrErr == nil {
		t := txnPartitions(txnID, pid, epoch, parts, true)
		return firstPartitionCode(shard.AddPartitionsToTxnTransaction(ctx, 4, &t))
	}
	if kerrErr != kerr.NotCoordinator {
		return kerrErr.Code
	}
	node, kerrErr := b.txns.coordinatorNode(ctx, txnID)
	if kerrErr != nil {
		return kerrErr.Code
	}
	return b.interBroker.addPartitionsRemote(ctx, node, txnID, pid, epoch, parts, verifyOnly)
}

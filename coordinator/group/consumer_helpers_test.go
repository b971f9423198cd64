package group

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicTable is a mutable Config.Topics for tests.
type topicTable struct {
	mu     sync.Mutex
	topics map[string]TopicMeta
}

func newTopicTable() *topicTable { return &topicTable{topics: map[string]TopicMeta{}} }

func (tt *topicTable) set(name string, partitions int32) TopicMeta {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t, ok := tt.topics[name]
	if !ok {
		t = TopicMeta{Name: name}
		copy(t.ID[:], fmt.Sprintf("id:%-13s", name))
	}
	t.Partitions = partitions
	tt.topics[name] = t
	return t
}

func (tt *topicTable) list() []TopicMeta {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	out := make([]TopicMeta, 0, len(tt.topics))
	for _, t := range tt.topics {
		out = append(out, t)
	}
	return out
}

func (tt *topicTable) name(id [16]byte) string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, t := range tt.topics {
		if t.ID == id {
			return t.Name
		}
	}
	return "?"
}

func consumerConfig(tt *topicTable) Config {
	c := testConfig()
	c.Topics = tt.list
	return c
}

// cclient drives one KIP-848 member the way a client does: it owns what
// the last assignment gave it (revoking immediately) and reports it.
type cclient struct {
	s        *Shard
	tt       *topicTable
	group    string
	id       string
	epoch    int32
	instance *string
	topics   []string
	regex    *string
	assignor *string
	owned    map[string]bool // "topic/partition"
}

var clientSeq int

func newCClient(s *Shard, tt *topicTable, groupID string, topics ...string) *cclient {
	clientSeq++
	return &cclient{s: s, tt: tt, group: groupID, id: fmt.Sprintf("member-%03d", clientSeq), topics: topics, owned: map[string]bool{}}
}

func (c *cclient) request(epoch int32) *kmsg.ConsumerGroupHeartbeatRequest {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group = c.group
	req.MemberID = c.id
	req.MemberEpoch = epoch
	req.InstanceID = c.instance
	req.RebalanceTimeoutMillis = 5000
	req.SubscribedTopicNames = c.topics
	if c.topics == nil && c.regex == nil {
		req.SubscribedTopicNames = []string{}
	}
	req.SubscribedTopicRegex = c.regex
	req.ServerAssignor = c.assignor
	req.Topics = c.ownedTopics()
	return req
}

func (c *cclient) ownedTopics() []kmsg.ConsumerGroupHeartbeatRequestTopic {
	byTopic := map[string][]int32{}
	for k := range c.owned {
		var name string
		var p int32
		fmt.Sscanf(k, "%s %d", &name, &p)
		byTopic[name] = append(byTopic[name], p)
	}
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	c.tt.mu.Lock()
	defer c.tt.mu.Unlock()
	for name, ps := range byTopic {
		t := kmsg.NewConsumerGroupHeartbeatRequestTopic()
		t.TopicID = c.tt.topics[name].ID
		t.Partitions = ps
		out = append(out, t)
	}
	return out
}

// send sends req and applies a successful response.
func (c *cclient) send(t *testing.T, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	resp := c.s.ConsumerGroupHeartbeat(tctx(t), req)
	if resp.ErrorCode != 0 {
		return resp
	}
	if resp.MemberID != nil {
		c.id = *resp.MemberID
	}
	c.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		c.owned = map[string]bool{}
		for _, at := range resp.Assignment.Topics {
			for _, p := range at.Partitions {
				c.owned[fmt.Sprintf("%s %d", c.tt.name(at.TopicID), p)] = true
			}
		}
	}
	return resp
}

func (c *cclient) join(t *testing.T) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := c.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	c.owned = map[string]bool{}
	resp := c.send(t, req)
	wantCode(t, "join "+c.id, resp.ErrorCode, 0)
	return resp
}

func (c *cclient) heartbeat(t *testing.T) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	resp := c.send(t, c.request(c.epoch))
	wantCode(t, "heartbeat "+c.id, resp.ErrorCode, 0)
	return resp
}

func (c *cclient) leave(t *testing.T, epoch int32) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := c.request(epoch)
	resp := c.s.ConsumerGroupHeartbeat(tctx(t), req)
	wantCode(t, "leave "+c.id, resp.ErrorCode, 0)
	c.owned = map[string]bool{}
	return resp
}

func (c *cclient) ownedList() []string {
	out := make([]string, 0, len(c.owned))
	for k := range c.owned {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkDisjoint fails if two clients own the same partition.
func checkDisjoint(t *testing.T, cs []*cclient) {
	t.Helper()
	seen := map[string]string{}
	for _, c := range cs {
		for k := range c.owned {
			if other, ok := seen[k]; ok {
				t.Fatalf("partition %s owned by both %s and %s", k, other, c.id)
			}
			seen[k] = c.id
		}
	}
}

// converge heartbeats every client in turn, checking that no partition is
// ever owned twice, until done holds.
func converge(t *testing.T, cs []*cclient, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			for _, c := range cs {
				t.Logf("%s epoch %d owns %v", c.id, c.epoch, c.ownedList())
			}
			t.Fatalf("group did not converge")
		}
		for _, c := range cs {
			c.heartbeat(t)
			checkDisjoint(t, cs)
		}
	}
}

// balanced reports whether every client is at the group's epoch and owns
// want[i] partitions.
func balanced(t *testing.T, s *Shard, groupID string, cs []*cclient, want ...int) func() bool {
	return func() bool {
		d := cdescribe(t, s, groupID)
		if d.State != "Stable" {
			return false
		}
		for i, c := range cs {
			if c.epoch != d.Epoch || len(c.owned) != want[i] {
				return false
			}
		}
		return true
	}
}

func cdescribe(t *testing.T, s *Shard, groupID string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	return s.ConsumerGroupDescribe(tctx(t), groupID, false)
}

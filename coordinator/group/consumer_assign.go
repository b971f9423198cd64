package group

import (
	"sort"
)

// Server-side assignors of KIP-848. Both are deterministic (members and
// topics are visited in sorted order) and return a target for every member,
// empty when it gets nothing.
//
// uniform: every partition of every subscribed topic goes to a member
// subscribed to its topic; members' partition counts differ by at most one
// among members that could take each other's partitions, and a partition
// stays with its previous target owner when balance allows (sticky). This
// follows the intent of Kafka's UniformAssignor (optimized homogeneous and
// heterogeneous builders) without reproducing its exact choices.
//
// range: per topic, the subscribed members sorted by member ID take
// contiguous ranges, the first (partitions % members) one partition more
// (Kafka's RangeAssignor shape; Kafka's server-side range assignor is also
// sticky and co-partitions topics the same way).

// assignMember is one member as the assignors see it.
type assignMember struct {
	id     string
	topics []string // resolved subscription, sorted
}

type assignInput struct {
	members []assignMember       // sorted by ID
	topics  map[string]TopicMeta // subscription metadata
	prev    map[string]partSet   // previous target assignment
}

func runAssignor(name string, in assignInput) map[string]partSet {
	if name == assignorRange {
		return assignRange(in)
	}
	return assignUniform(in)
}

// eligibleByTopic maps each assignable topic to its subscribed members.
func (in assignInput) eligibleByTopic() map[string][]string {
	out := map[string][]string{}
	for _, m := range in.members {
		for _, t := range m.topics {
			if meta, ok := in.topics[t]; ok && meta.Partitions > 0 {
				out[t] = append(out[t], m.id)
			}
		}
	}
	return out
}

func emptyTargets(in assignInput) map[string]partSet {
	out := make(map[string]partSet, len(in.members))
	for _, m := range in.members {
		out[m.id] = partSet{}
	}
	return out
}

func assignRange(in assignInput) map[string]partSet {
	out := emptyTargets(in)
	elig := in.eligibleByTopic()
	names := make([]string, 0, len(elig))
	for t := range elig {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		meta := in.topics[t]
		subs := elig[t]
		n, k := int(meta.Partitions), len(subs)
		q, r := n/k, n%k
		start := 0
		for i, id := range subs {
			cnt := q
			if i < r {
				cnt++
			}
			for p := start; p < start+cnt; p++ {
				out[id][tidp{meta.ID, int32(p)}] = struct{}{}
			}
			start += cnt
		}
	}
	return out
}

func assignUniform(in assignInput) map[string]partSet {
	out := emptyTargets(in)
	elig := in.eligibleByTopic()
	byID := map[[16]byte]string{}
	eligSet := map[string]map[string]bool{} // topic -> member set
	var all []tidp
	names := make([]string, 0, len(elig))
	for t := range elig {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		meta := in.topics[t]
		byID[meta.ID] = t
		eligSet[t] = map[string]bool{}
		for _, id := range elig[t] {
			eligSet[t][id] = true
		}
		for p := int32(0); p < meta.Partitions; p++ {
			all = append(all, tidp{meta.ID, p})
		}
	}
	owner := map[tidp]string{}
	give := func(k tidp, id string) {
		owner[k] = id
		out[id][k] = struct{}{}
	}
	take := func(k tidp) {
		delete(out[owner[k]], k)
		delete(owner, k)
	}
	// Sticky: keep previous targets that are still valid.
	for _, m := range in.members {
		prev := in.prev[m.id]
		keys := make([]tidp, 0, len(prev))
		for k := range prev {
			keys = append(keys, k)
		}
		sortTidps(keys, byID)
		for _, k := range keys {
			t, ok := byID[k.id]
			if !ok || !eligSet[t][m.id] || k.p >= in.topics[t].Partitions {
				continue
			}
			if _, taken := owner[k]; !taken {
				give(k, m.id)
			}
		}
	}
	// leastLoaded is the eligible member with the fewest partitions
	// (member ID order breaks ties).
	leastLoaded := func(t string) string {
		best := ""
		for _, id := range elig[t] {
			if best == "" || len(out[id]) < len(out[best]) {
				best = id
			}
		}
		return best
	}
	for _, k := range all {
		if _, ok := owner[k]; !ok {
			give(k, leastLoaded(byID[k.id]))
		}
	}
	// Balance: move a partition from a member to an eligible member with at
	// least two fewer, until no such move exists.
	for iter := 0; iter <= 2*len(all); iter++ {
		ids := make([]string, 0, len(out))
		for id := range out {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool {
			if len(out[ids[i]]) != len(out[ids[j]]) {
				return len(out[ids[i]]) > len(out[ids[j]])
			}
			return ids[i] < ids[j]
		})
		moved := false
		for _, a := range ids {
			keys := make([]tidp, 0, len(out[a]))
			for k := range out[a] {
				keys = append(keys, k)
			}
			sortTidps(keys, byID)
			for i := len(keys) - 1; i >= 0 && !moved; i-- {
				k := keys[i]
				b := leastLoaded(byID[k.id])
				if b != "" && b != a && len(out[a]) > len(out[b])+1 {
					take(k)
					give(k, b)
					moved = true
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			break
		}
	}
	return out
}

// sortTidps orders partitions by topic name, then partition.
func sortTidps(keys []tidp, names map[[16]byte]string) {
	sort.Slice(keys, func(i, j int) bool {
		ni, nj := names[keys[i].id], names[keys[j].id]
		if ni != nj {
			return ni < nj
		}
		return keys[i].p < keys[j].p
	})
}

// preferredAssignor is the assignor most members name (ties by name), or
// the first configured one: Kafka's computePreferredServerAssignor.
func (s *Shard) preferredAssignor(members map[string]*cmember) string {
	counts := map[string]int{}
	for _, m := range members {
		if m.assignor != nil {
			counts[*m.assignor]++
		}
	}
	best := ""
	for name, n := range counts {
		if best == "" || n > counts[best] || (n == counts[best] && name < best) {
			best = name
		}
	}
	if best == "" {
		return s.cfg.ConsumerAssignors[0]
	}
	return best
}

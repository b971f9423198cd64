package broker

import (
	"slices"

	"github.com/kbroker/kbroker/etcd"
)

// assignReplicasFor places replicas as Kafka's AdminUtils does: rack-aware
// when every candidate broker has a broker.rack, rack-unaware otherwise.
func assignReplicasFor(img *etcd.Image, brokers []int32, partitions, rf, firstPartition int) [][]int32 {
	racks := map[int32]string{}
	for _, id := range brokers {
		rack := img.Brokers[id].Rack
		if rack == "" {
			return assignReplicas(brokers, partitions, rf, firstPartition)
		}
		racks[id] = rack
	}
	return assignReplicasRackAware(brokers, racks, partitions, rf, firstPartition)
}

// rackAlternated orders brokers so that consecutive ones sit on different
// racks (rack1-b1, rack2-b1, rack3-b1, rack1-b2, ...), Kafka's
// getRackAlternatedBrokerList.
func rackAlternated(brokers []int32, racks map[int32]string) []int32 {
	byRack := map[string][]int32{}
	var names []string
	for _, id := range brokers {
		r := racks[id]
		if _, ok := byRack[r]; !ok {
			names = append(names, r)
		}
		byRack[r] = append(byRack[r], id)
	}
	slices.Sort(names)
	var out []int32
	for i := 0; len(out) < len(brokers); i++ {
		for _, r := range names {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}

// assignReplicasRackAware spreads each partition's replicas over as many
// racks as possible, leaders round-robin over the rack-alternated broker
// list, as Kafka's assignReplicasToBrokersRackAware.
func assignReplicasRackAware(brokers []int32, racks map[int32]string, partitions, rf, firstPartition int) [][]int32 {
	arranged := rackAlternated(brokers, racks)
	n := len(arranged)
	seen := map[string]bool{}
	for _, r := range racks {
		seen[r] = true
	}
	numRacks := len(seen)
	start := randInt(n)
	shift := randInt(n)
	out := make([][]int32, partitions)
	for i := 0; i < partitions; i++ {
		p := firstPartition + i
		if p > 0 && p%n == 0 {
			shift++
		}
		first := (p + start) % n
		leader := arranged[first]
		replicas := []int32{leader}
		withRack := map[string]bool{racks[leader]: true}
		withBroker := map[int32]bool{leader: true}
		k := 0
		for j := 0; j < rf-1; j++ {
			for {
				s := 1 + (shift*numRacks+k)%(n-1)
				b := arranged[(first+s)%n]
				k++
				rack := racks[b]
				if (!withRack[rack] || len(withRack) == numRacks) && (!withBroker[b] || len(withBroker) == n) {
					replicas = append(replicas, b)
					withRack[rack] = true
					withBroker[b] = true
					break
				}
			}
		}
		out[i] = replicas
	}
	return out
}

package broker

import (
	"testing"

	"github.com/kbroker/kbroker/etcd"
)

func TestRackAwareAssignmentSpreadsRacks(t *testing.T) {
	img := &etcd.Image{Brokers: map[int32]etcd.BrokerInfo{}}
	racks := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
	var ids []int32
	for id, r := range racks {
		img.Brokers[id] = etcd.BrokerInfo{ID: id, Rack: r}
		ids = append(ids, id)
	}
	ids = liveBrokerIDs(img)
	for trial := 0; trial < 20; trial++ {
		got := assignReplicasFor(img, ids, 12, 3, 0)
		leaders := map[int32]int{}
		for p, replicas := range got {
			seenRack, seenBroker := map[string]bool{}, map[int32]bool{}
			for _, r := range replicas {
				if seenRack[racks[r]] || seenBroker[r] {
					t.Fatalf("partition %d replicas %v: two on rack %s or broker twice", p, replicas, racks[r])
				}
				seenRack[racks[r]], seenBroker[r] = true, true
			}
			leaders[replicas[0]]++
		}
		for _, id := range ids {
			if leaders[id] != 2 {
				t.Fatalf("leaders not spread evenly: %v", leaders)
			}
		}
	}
	// Without racks on every broker, the rack-unaware assignment is used.
	img.Brokers[1] = etcd.BrokerInfo{ID: 1}
	if got := assignReplicasFor(img, ids, 6, 3, 0); len(got) != 6 || len(got[0]) != 3 {
		t.Fatalf("rack-unaware fallback: %v", got)
	}
}

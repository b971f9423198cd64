package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"sort"
	"testing"
	"time"
)

// pyRecord mirrors one record in python/roundtrip.py's JSON output.
type pyRecord struct {
	Partition int32       `json:"partition"`
	Offset    int64       `json:"offset"`
	Key       string      `json:"key"`
	Value     string      `json:"value"`
	Headers   [][2]string `json:"headers"`
	Timestamp int64       `json:"timestamp"`
}

// TestKafkaPython runs kafka-python (Debian's python3-kafka, which loads only
// under /usr/bin/python3) through a produce/consume round trip and compares
// what it acknowledged with what it read back, offset by offset.
func TestKafkaPython(t *testing.T) {
	py := requireTool(t, "/usr/bin/python3", "Debian's python3 with python3-kafka")
	if err := exec.Command(py, "-c", "import kafka").Run(); err != nil {
		missingTool(t, "/usr/bin/python3 cannot import kafka ("+err.Error()+"): install the Debian package python3-kafka")
	}
	b := StartBroker(t)
	createTopic(t, newAdmin(t, b), "python", 2, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "python/roundtrip.py", b.Addr(), "python", "200")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kafka-python round trip: %v\nstderr:\n%s", err, stderr.String())
	}
	var out struct {
		Acked    []pyRecord `json:"acked"`
		Consumed []pyRecord `json:"consumed"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("parse script output: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if len(out.Acked) != 400 {
		t.Fatalf("%d records acknowledged, want 400", len(out.Acked))
	}
	sortPy := func(rs []pyRecord) {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].Partition != rs[j].Partition {
				return rs[i].Partition < rs[j].Partition
			}
			return rs[i].Offset < rs[j].Offset
		})
	}
	sortPy(out.Acked)
	sortPy(out.Consumed)
	next := map[int32]int64{}
	for _, r := range out.Acked {
		if r.Offset != next[r.Partition] {
			t.Fatalf("acknowledged offsets of partition %d are not dense: %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
	}
	if !reflect.DeepEqual(out.Acked, out.Consumed) {
		n := min(len(out.Acked), len(out.Consumed))
		for i := 0; i < n; i++ {
			if !reflect.DeepEqual(out.Acked[i], out.Consumed[i]) {
				t.Fatalf("first difference at #%d:\n acked    %+v\n consumed %+v", i, out.Acked[i], out.Consumed[i])
			}
		}
		t.Fatalf("acked %d records, consumed %d", len(out.Acked), len(out.Consumed))
	}
}

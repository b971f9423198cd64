package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kbroker/kbroker/etcd"
)

// A partition that cannot be opened because its topic was deleted (or
// recreated, or shrunk) since the image being applied is the normal race
// with DeleteTopics: Debug, not Error. Other failures stay errors.
func TestOpenFailureLogLevels(t *testing.T) {
	id := [16]byte{1}
	latest := &etcd.Image{Topics: map[string]*etcd.Topic{
		"live": {Name: "live", ID: id, Partitions: []etcd.Partition{{ID: 0}}},
	}}
	diskErr := errors.New("open segment: input/output error")
	cases := []struct {
		name, topic string
		partition   int32
		id          [16]byte
		err         error
		want        string // "" for no line
	}{
		{"topic deleted", "gone", 0, id, errUnknownPartition, `level=DEBUG msg="not opening partition of a deleted topic"`},
		{"topic deleted while opening", "gone", 0, id, diskErr, `level=DEBUG msg="not opening partition of a deleted topic"`},
		{"topic recreated", "live", 0, [16]byte{2}, diskErr, `level=DEBUG msg="not opening partition of a deleted topic"`},
		{"partition gone", "live", 3, id, diskErr, `level=DEBUG msg="not opening partition of a deleted topic"`},
		{"moved off this broker", "live", 0, id, errNotLeader, ""},
		{"failure of a live partition", "live", 0, id, diskErr, `level=ERROR msg="open partition"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s := &partitionSet{b: &Broker{logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}}
			s.logOpenFailure(latest, tc.topic, tc.partition, tc.id, tc.err)
			got := strings.TrimSpace(out.String())
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("logged %q, want nothing", got)
			case tc.want != "" && (strings.Count(got, "\n") != 0 || !strings.Contains(got, tc.want)):
				t.Fatalf("logged %q, want one line with %s", got, tc.want)
			}
		})
	}
}

package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// runKcat runs kcat with stdin and returns stdout; a non-zero exit fails.
func runKcat(t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestKcat drives librdkafka through kcat: metadata listing, keyed produce
// with headers, consume with a format string, and every codec.
func TestKcat(t *testing.T) {
	kcat := requireTool(t, "kcat", "install the Debian package kcat")
	b := StartBroker(t)
	adm := newAdmin(t, b)
	createTopic(t, adm, "kcat", 2, nil)
	common := []string{"-b", b.Addr(), "-X", "broker.address.family=v4"}

	t.Run("list", func(t *testing.T) {
		out := runKcat(t, kcat, "", append(common, "-L", "-J")...)
		var md struct {
			Brokers []struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Partitions []struct {
					Partition int32 `json:"partition"`
					Leader    int32 `json:"leader"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("kcat -L -J output is not JSON: %v\n%s", err, out)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Brokers[0].Name != b.Addr() {
			t.Errorf("kcat -L brokers %+v, want id 1 at %s", md.Brokers, b.Addr())
		}
		found := false
		for _, tp := range md.Topics {
			if tp.Topic == "kcat" {
				found = len(tp.Partitions) == 2 && tp.Partitions[0].Leader == 1 && tp.Partitions[1].Leader == 1
			}
		}
		if !found {
			t.Errorf("kcat -L does not show topic kcat with 2 led partitions: %s", out)
		}
	})

	t.Run("keyed_with_headers", func(t *testing.T) {
		var want []string
		for p := 0; p < 2; p++ {
			var in strings.Builder
			for i := 0; i < 50; i++ {
				key, val := fmt.Sprintf("key-%d-%d", p, i), fmt.Sprintf("value %d of partition %d, with spaces", i, p)
				fmt.Fprintf(&in, "%s:%s\n", key, val)
				want = append(want, fmt.Sprintf("%d|%d|%s|%s|h1=v1,trace=abc-%d", p, i, key, val, p))
			}
			runKcat(t, kcat, in.String(), append(common, "-P", "-t", "kcat", "-p", fmt.Sprint(p),
				"-K:", "-H", "h1=v1", "-H", fmt.Sprintf("trace=abc-%d", p))...)
		}
		var got []string
		for p := 0; p < 2; p++ {
			out := runKcat(t, kcat, "", append(common, "-C", "-t", "kcat", "-p", fmt.Sprint(p), "-o", "beginning", "-e",
				"-f", `%p|%o|%k|%s|%h\n`)...)
			got = append(got, strings.Split(strings.TrimSuffix(out, "\n"), "\n")...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("kcat round trip differs:\n got %q\nwant %q", got, want)
		}
	})

	for _, codec := range []struct {
		name string
		attr uint8
	}{{"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run("codec_"+codec.name, func(t *testing.T) {
			topic := "kcat-" + codec.name
			createTopic(t, adm, topic, 1, nil)
			var in strings.Builder
			var want []string
			for i := 0; i < 300; i++ {
				key, val := fmt.Sprintf("k%d", i), fmt.Sprintf("%s payload %d %s", codec.name, i, strings.Repeat("z", i%50))
				fmt.Fprintf(&in, "%s:%s\n", key, val)
				want = append(want, fmt.Sprintf("%d|%s|%s", i, key, val))
			}
			runKcat(t, kcat, in.String(), append(common, "-P", "-t", topic, "-p", "0", "-K:", "-z", codec.name)...)
			out := runKcat(t, kcat, "", append(common, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", `%o|%k|%s\n`)...)
			if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, want) {
				t.Fatalf("kcat -z %s round trip differs:\n got %.300q\nwant %.300q", codec.name, got, want)
			}
			// librdkafka must really have compressed: it silently sends
			// uncompressed batches when ApiVersions lacks what it keys a
			// codec on (Produce v0 for all codecs, KAFKA-18659; also
			// FindCoordinator v0 for LZ4, Produce v7 + Fetch v10 for zstd).
			recs := consumeRange(t, b, topic, map[int32]int64{0: 300})
			for _, r := range recs[0] {
				if r.Attrs.CompressionType() != codec.attr {
					t.Fatalf("%s@%d stored with codec %d, want %d (%s)", topic, r.Offset, r.Attrs.CompressionType(), codec.attr, codec.name)
				}
			}
		})
	}
}

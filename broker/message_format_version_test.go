package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestMessageFormatVersionAcceptedAsKafka3: kadm's CreateTopics,
// IncrementalAlterConfigs and AlterConfigs with message.format.version in a
// form Kafka 3.x accepts (0.10.0.0 is what librdkafka's test suite sets)
// succeed, and a value Kafka refuses still answers INVALID_CONFIG.
func TestMessageFormatVersionAcceptedAsKafka3(t *testing.T) {
	tb := startBroker(t, t.TempDir())
	adm := kadm.NewClient(newClient(t, tb.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	created, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"message.format.version": kadm.StringPtr("0.10.0.0")}, "mfv")
	if err != nil {
		t.Fatal(err)
	}
	if r := created["mfv"]; r.Err != nil {
		t.Fatalf("CreateTopics with message.format.version=0.10.0.0: %v (%s)", r.Err, r.ErrMessage)
	}

	for _, v := range []string{"0.10.0.0", "0.10.0-IV1", "2.8", "3.0-IV1"} {
		inc, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.format.version", Value: kadm.StringPtr(v)}}, "mfv")
		if err != nil {
			t.Fatal(err)
		}
		if len(inc) != 1 || inc[0].Err != nil {
			t.Errorf("IncrementalAlterConfigs message.format.version=%s: %+v", v, inc)
		}
		state, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "message.format.version", Value: kadm.StringPtr(v)}}, "mfv")
		if err != nil {
			t.Fatal(err)
		}
		if len(state) != 1 || state[0].Err != nil {
			t.Errorf("AlterConfigs message.format.version=%s: %+v", v, state)
		}
	}

	bad, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "message.format.version", Value: kadm.StringPtr("0.10")}}, "mfv")
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Err != kerr.InvalidConfig {
		t.Errorf("IncrementalAlterConfigs message.format.version=0.10: %+v, want INVALID_CONFIG", bad)
	}
}

package broker

import (
	"errors"
	"reflect"
	"testing"

	"github.com/kbroker/kbroker/broker/config"
	"github.com/kbroker/kbroker/etcd"
)

// What a broker registers follows Kafka's effectiveAdvertisedBrokerListeners
// and ListenerInfo: advertised.listeners as a whole, or else listeners; port
// 0 becomes the bound port; an empty host the machine's hostname.
func TestAdvertisedEndpoints(t *testing.T) {
	hostname := func() (string, error) { return "box", nil }
	bound := map[string]int32{"PLAINTEXT": 40001, "IN": 40002}
	twoListeners := func(c *config.Config) {
		c.Listeners = []config.Listener{{Name: "PLAINTEXT", Host: "", Port: 0}, {Name: "IN", Host: "10.0.0.5", Port: 9093}}
		c.ListenerSecurityProtocolMap = map[string]string{"PLAINTEXT": "PLAINTEXT", "IN": "PLAINTEXT"}
	}
	ep := func(name, host string, port int32) etcd.Endpoint {
		return etcd.Endpoint{Listener: name, Host: host, Port: port, SecurityProtocol: "PLAINTEXT"}
	}
	cases := []struct {
		name string
		edit func(*config.Config)
		want []etcd.Endpoint
	}{
		{"unset falls back to listeners", twoListeners,
			[]etcd.Endpoint{ep("PLAINTEXT", "box", 40001), ep("IN", "10.0.0.5", 9093)}},
		{"set replaces listeners as a whole", func(c *config.Config) {
			twoListeners(c)
			c.AdvertisedListeners = []config.Listener{{Name: "PLAINTEXT", Host: "kafka.example", Port: 19092}}
		}, []etcd.Endpoint{ep("PLAINTEXT", "kafka.example", 19092)}},
		{"advertised port 0 is the bound port", func(c *config.Config) {
			twoListeners(c)
			c.AdvertisedListeners = []config.Listener{{Name: "IN", Host: "in.example", Port: 0}, {Name: "PLAINTEXT", Host: "", Port: 0}}
		}, []etcd.Endpoint{ep("IN", "in.example", 40002), ep("PLAINTEXT", "box", 40001)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := config.NewConfig()
			tc.edit(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("config: %v", err)
			}
			if got := advertisedEndpoints(c, bound, hostname); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	c := config.NewConfig()
	c.Listeners = []config.Listener{{Name: "PLAINTEXT", Port: 0}}
	got := advertisedEndpoints(c, map[string]int32{"PLAINTEXT": 1}, func() (string, error) { return "", errors.New("no hostname") })
	if len(got) != 1 || got[0].Host != "localhost" {
		t.Fatalf("without a hostname: %+v", got)
	}
}

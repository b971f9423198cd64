package compat

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The images the docker tests run; `make image example-image` builds them.
const (
	dkImage    = "kbroker:latest"
	dkAppImage = "kbroker-example-app:latest"
	// dkSkip is the one message a test skips with when no engine answers.
	dkSkip = "docker: no engine answered; skipped"
	// dkCmdTimeout bounds one docker or docker-compose command.
	dkCmdTimeout = 3 * time.Minute
)

var (
	dkBuildOnce sync.Once
	dkBuildErr  error
)

// requireDocker skips the test when no Docker engine answers and otherwise
// builds the images once per test binary. When an engine answers the tests
// run, under CI or not; a missing docker-compose is then a missing tool.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		t.Skip(dkSkip)
	}
	requireTool(t, "docker-compose", "install docker-compose")
	dkBuildOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			dkBuildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-C", root, "image", "example-image")
		if out, err := cmd.CombinedOutput(); err != nil {
			dkBuildErr = fmt.Errorf("make image example-image: %v\n%s", err, out)
		}
	})
	if dkBuildErr != nil {
		t.Fatal(dkBuildErr)
	}
}

// dkRun runs a command with a bounded time and returns its combined output.
func dkRun(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dkCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// composeStack is one docker-compose project under test, named uniquely so
// runs never share containers, networks or volumes.
type composeStack struct {
	t       *testing.T
	file    string
	project string
}

// startCompose brings the compose file up under a fresh project name. Its
// cleanup prints the containers' logs when the test failed and then removes
// everything, volumes included.
func startCompose(t *testing.T, file string, hostPorts ...int) *composeStack {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range hostPorts {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("%s publishes host port %d, which is taken: %v", file, p, err)
		}
		l.Close()
	}
	s := &composeStack{t: t, file: abs, project: fmt.Sprintf("kbt%d%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose("logs", "--no-color", "--tail", "200")
			t.Logf("docker-compose logs of %s:\n%s", s.project, out)
		}
		if out, err := s.compose("down", "-v", "-t", "5"); err != nil {
			t.Logf("docker-compose down -v: %v\n%s", err, out)
		}
	})
	s.must("up", "-d")
	return s
}

func (s *composeStack) compose(args ...string) (string, error) {
	return dkRun("", "docker-compose", append([]string{"-p", s.project, "-f", s.file}, args...)...)
}

func (s *composeStack) must(args ...string) string {
	s.t.Helper()
	out, err := s.compose(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// network is the project's default network, which containers join with
// `docker run --network`.
func (s *composeStack) network() string { return s.project + "_default" }

// waitHealthy waits until Docker reports each service's container healthy,
// which is the image's `kbroker healthcheck` succeeding inside it.
func (s *composeStack) waitHealthy(d time.Duration, services ...string) {
	s.t.Helper()
	dkPoll(s.t, d, "containers healthy", func() error {
		for _, svc := range services {
			id, err := s.compose("ps", "-q", svc)
			if err != nil {
				return err
			}
			id = strings.TrimSpace(id)
			if id == "" {
				return fmt.Errorf("%s has no container", svc)
			}
			state, err := dkRun("", "docker", "inspect", "-f", "{{.State.Health.Status}}", id)
			if err != nil {
				return err
			}
			if strings.TrimSpace(state) != "healthy" {
				return fmt.Errorf("%s is %s", svc, strings.TrimSpace(state))
			}
		}
		return nil
	})
}

// runApp runs the example client image on the project's network.
func (s *composeStack) runApp(args ...string) string {
	s.t.Helper()
	out, err := dkRun("", "docker", append([]string{"run", "--rm", "--network", s.network(), dkAppImage}, args...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// dkPoll polls cond every half second until it returns nil or d passes.
func dkPoll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dkClient is a franz-go client for host-side access through the published
// ports; extra options are appended.
func dkClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// dkWaitBrokers waits until Metadata lists want brokers at the given
// advertised addresses.
func dkWaitBrokers(t *testing.T, adm *kadm.Client, d time.Duration, want ...string) {
	t.Helper()
	dkPoll(t, d, "brokers registered", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return err
		}
		var got []string
		for _, b := range m.Brokers {
			got = append(got, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
		}
		if strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(want), ",") {
			return fmt.Errorf("brokers %v, want %v", got, want)
		}
		return nil
	})
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	slices.Sort(c)
	return c
}

// dkProduce produces values with acks=all, each retried until d passes.
func dkProduce(t *testing.T, cl *kgo.Client, d time.Duration, topic string, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, v := range values {
		for {
			err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}).FirstErr()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("produce %s to %s: %v", v, topic, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// dkConsume polls cl until it has n records and returns their values.
func dkConsume(t *testing.T, cl *kgo.Client, d time.Duration, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records in %v: %v", len(got), n, d, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// dkValues is prefix-0 .. prefix-(n-1).
func dkValues(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, from+i)
	}
	return out
}

// dkSameSet fails unless got and want hold the same values, in any order.
func dkSameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	if g, w := strings.Join(sortedCopy(got), ","), strings.Join(sortedCopy(want), ","); g != w {
		t.Fatalf("%s: got %d values %s\nwant %d values %s", what, len(got), g, len(want), w)
	}
}

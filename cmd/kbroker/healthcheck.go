package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/broker/config"
)

// healthcheckTimeout bounds the whole check: Docker's own HEALTHCHECK timeout
// defaults to 30 s, and a broker that needs more than a few seconds to answer
// ApiVersions is not healthy.
const healthcheckTimeout = 5 * time.Second

// defaultHealthcheckAddr is Kafka's well-known port on this machine.
const defaultHealthcheckAddr = "localhost:9092"

// healthcheck implements `kbroker healthcheck [host:port]`: it sends one
// ApiVersions request and exits 0 when the broker answers without error, 1
// otherwise. It needs no shell or client tools, so a FROM scratch image can
// use it as its Docker HEALTHCHECK. Without an address it checks the first
// listener that the environment configures (KAFKA_LISTENERS and the other
// dialects, see config.ParseEnv), on loopback when that listener binds every
// interface, else localhost:9092.
func healthcheck(args []string) int {
	var addr string
	switch len(args) {
	case 0:
		addr = healthcheckAddr(os.Environ())
	case 1:
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(os.Stdout, "usage: kbroker healthcheck [host:port]\nExits 0 when the broker at host:port (default: the first configured listener, else localhost:9092) answers ApiVersions.")
			return 0
		}
		addr = args[0]
	default:
		fmt.Fprintln(os.Stderr, "usage: kbroker healthcheck [host:port]")
		return 2
	}
	if err := checkBroker(addr, healthcheckTimeout); err != nil {
		fmt.Fprintf(os.Stderr, "kbroker healthcheck: %s: %v\n", addr, err)
		return 1
	}
	return 0
}

// healthcheckAddr derives the address to check from the environment.
func healthcheckAddr(environ []string) string {
	ls := config.EnvListeners(environ)
	if len(ls) == 0 {
		return defaultHealthcheckAddr
	}
	l := ls[0]
	host := l.Host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(int(l.Port)))
}

// checkBroker sends ApiVersions v0 (every Kafka version answers it with
// response header v0) and checks the answer's correlation ID and error code.
func checkBroker(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	const correlationID = 0x6b62 // "kb"
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	// Request header v1: api key, version, correlation ID, client ID.
	clientID := "kbroker-healthcheck"
	frame := make([]byte, 4, 64)
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Version))
	frame = binary.BigEndian.AppendUint32(frame, correlationID)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientID)))
	frame = append(frame, clientID...)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("send ApiVersions: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<20 {
		return fmt.Errorf("ApiVersions response of %d bytes is not plausible", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	if got := binary.BigEndian.Uint32(body); got != correlationID {
		return fmt.Errorf("response correlation ID %d, want %d", got, correlationID)
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if err := resp.ReadFrom(body[4:]); err != nil {
		return fmt.Errorf("decode ApiVersions response: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("ApiVersions: %w", err)
	}
	if len(resp.ApiKeys) == 0 {
		return errors.New("ApiVersions response lists no APIs")
	}
	return nil
}

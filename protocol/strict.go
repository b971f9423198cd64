package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsg reads a negative count for a non-nullable array as an empty array;
// Kafka refuses such a request ("non-nullable field was serialized as
// null") and closes the connection. checkStrict restores Kafka's answer.
//
// For non-flexible versions (no tagged fields, so kmsg's encoding is
// canonical) the decoded request is re-encoded and compared with the bytes
// received: any lie about a count shows up as a difference. Produce, whose
// body is mostly record bytes, is instead scanned field by field so the hot
// path does not copy its records. Flexible versions encode lengths as
// unsigned varints, where the only "negative" is null, which kmsg checks.
func checkStrict(req kmsg.Request, body []byte) error {
	if req.IsFlexible() {
		return nil
	}
	if req.Key() == int16(kmsg.Produce) {
		return scanProduce(body)
	}
	again := req.AppendTo(make([]byte, 0, len(body)))
	if !bytes.Equal(again, body) {
		return fmt.Errorf("protocol: %s v%d does not re-encode to the bytes received (a negative or inconsistent count or length)", kmsg.NameForKey(req.Key()), req.GetVersion())
	}
	return nil
}

// scanProduce walks a non-flexible Produce (v3–v8) body:
// transactional_id nullable string, acks int16, timeout int32,
// [topic string, [partition int32, records nullable bytes]].
func scanProduce(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("protocol: Produce: bad %s", what) }
	str := func(nullable bool) bool {
		if len(b) < 2 {
			return false
		}
		n := int(int16(binary.BigEndian.Uint16(b)))
		b = b[2:]
		if n == -1 && nullable {
			return true
		}
		if n < 0 || n > len(b) {
			return false
		}
		b = b[n:]
		return true
	}
	count := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		n := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		return n, n >= 0 && n <= len(b)
	}
	if !str(true) {
		return bad("transactional id")
	}
	if len(b) < 6 {
		return bad("acks or timeout")
	}
	b = b[6:]
	topics, ok := count()
	if !ok {
		return bad("topic count")
	}
	for i := 0; i < topics; i++ {
		if !str(false) {
			return bad("topic name")
		}
		parts, ok := count()
		if !ok {
			return bad("partition count")
		}
		for j := 0; j < parts; j++ {
			if len(b) < 8 {
				return bad("partition")
			}
			n := int(int32(binary.BigEndian.Uint32(b[4:])))
			b = b[8:]
			if n < -1 || n > len(b) {
				return bad("records length")
			}
			if n > 0 {
				b = b[n:]
			}
		}
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

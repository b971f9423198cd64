package etcd

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// NewUUID returns a random version-4 UUID the way Kafka's Uuid.randomUuid
// does: never the all-zero ID, never the reserved metadata topic ID (0…01),
// and never one whose string form starts with '-' (it would read as a
// command-line flag). Used for cluster IDs, topic IDs and the incarnation
// of a registration that names none.
func NewUUID() [16]byte {
	for {
		var u [16]byte
		_, _ = rand.Read(u[:])  // crypto/rand.Read never fails on supported platforms
		u[6] = u[6]&0x0f | 0x40 // version 4
		u[8] = u[8]&0x3f | 0x80 // IETF variant
		if FormatUUID(u)[0] != '-' {
			return u
		}
	}
}

// FormatUUID renders u as Kafka does: 22 characters of URL-safe base64
// without padding.
func FormatUUID(u [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(u[:])
}

// ParseUUID is the inverse of FormatUUID.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return u, fmt.Errorf("etcd: parse uuid %q: %w", s, err)
	}
	if len(b) != len(u) {
		return u, fmt.Errorf("etcd: parse uuid %q: %d bytes, want 16", s, len(b))
	}
	copy(u[:], b)
	return u, nil
}

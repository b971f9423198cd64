package protocol

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnsupported marks a request whose API key or version the broker does
// not serve. The caller answers an ApiVersions request with the v0 error
// response and closes the connection for anything else, as Kafka does.
var ErrUnsupported = errors.New("protocol: unsupported API key or version")

// DecodeRequest decodes one frame body into its header and a kmsg request.
// supported reports whether the broker serves key at version; it is asked
// before the body is decoded so that an unknown version is never parsed.
// On ErrUnsupported the header is still returned (with the request nil) so
// the caller can answer in kind.
func DecodeRequest(body []byte, supported func(key, version int16) bool) (RequestHeader, kmsg.Request, error) {
	key, version, err := PeekKeyVersion(body)
	if err != nil {
		return RequestHeader{}, nil, err
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		hdr, _, herr := ParseRequestHeader(body, false)
		if herr != nil {
			hdr = RequestHeader{Key: key, Version: version}
		}
		return hdr, nil, fmt.Errorf("%w: api key %d", ErrUnsupported, key)
	}
	req.SetVersion(version)
	hdr, rest, err := ParseRequestHeader(body, req.IsFlexible())
	if err != nil {
		return RequestHeader{Key: key, Version: version}, nil, err
	}
	if !supported(key, version) {
		return hdr, nil, fmt.Errorf("%w: %s v%d", ErrUnsupported, kmsg.NameForKey(key), version)
	}
	if err := req.ReadFrom(rest); err != nil {
		return hdr, nil, fmt.Errorf("protocol: decode %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	if err := checkStrict(req, rest); err != nil {
		return hdr, nil, err
	}
	return hdr, req, nil
}

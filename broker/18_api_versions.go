package broker

// ApiVersions: v0-5
//
// Behavior:
// * Lists every API in the dispatch table with its version range. Produce is
//   advertised from v0 (KAFKA-18659) though v0-v2 requests are refused.
// * A request at an unknown version is answered by the connection with a v0
//   response carrying UNSUPPORTED_VERSION and the ranges (see conn.readLoop).
// * v3+: client software name and version must match Kafka's pattern, else
//   INVALID_REQUEST.
//
// Version notes:
// * v1: ThrottleMillis; v3: flexible, client software name/version,
//   supported and finalized features (tagged).

import (
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var softwarePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func handleApiVersions(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ApiVersionsRequest)
	if r.Version >= 3 && (!softwarePattern.MatchString(r.ClientSoftwareName) || !softwarePattern.MatchString(r.ClientSoftwareVersion)) {
		return now(apiVersionsResponse(r.Version, kerr.InvalidRequest.Code)), nil
	}
	return now(apiVersionsResponse(r.Version, 0)), nil
}

// apiVersionsResponse builds the response from the dispatch table.
func apiVersionsResponse(version int16, errCode int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	resp.ErrorCode = errCode
	resp.ApiKeys = advertisedAPIs
	if version >= 3 {
		resp.SupportedFeatures = supportedFeatures
		resp.FinalizedFeaturesEpoch = finalizedFeaturesEpoch
		resp.FinalizedFeatures = finalizedFeatures
	}
	return resp
}

// Feature levels (KIP-584) the broker supports and runs at, as Kafka 4.x
// finalizes them by default: transaction.version 2 turns on KIP-890
// transactions v2 in clients (Produce v12+ adds partitions implicitly,
// EndTxn v5 bumps the epoch every transaction); group.version 1 is the
// KIP-848 consumer group protocol.
var (
	supportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{
		{Name: "transaction.version", MinVersion: 0, MaxVersion: 2},
		{Name: "group.version", MinVersion: 0, MaxVersion: 1},
	}
	finalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{
		{Name: "transaction.version", MinVersionLevel: 2, MaxVersionLevel: 2},
		{Name: "group.version", MinVersionLevel: 1, MaxVersionLevel: 1},
	}
)

// finalizedFeaturesEpoch versions the finalized feature set; it never
// changes while the levels above are fixed.
const finalizedFeaturesEpoch = 1

// advertisedAPIs is computed once from the dispatch table (in init, which
// also breaks the table → handler → table initialization cycle).
var advertisedAPIs []kmsg.ApiVersionsResponseApiKey

func init() {
	for key := range apis {
		a := &apis[key]
		if a.handle == nil {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = int16(key)
		k.MinVersion = a.advertisedMin()
		k.MaxVersion = a.maxVersion
		advertisedAPIs = append(advertisedAPIs, k)
	}
}

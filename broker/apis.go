package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one decoded request. A returned error closes the
// connection; partition- and request-level failures belong in the response
// as kerr codes.
type handlerFunc func(c *conn, hdr requestInfo, req kmsg.Request) (reply, error)

// api declares one Kafka API: the version range served and its handler.
// minVersion is the lowest Apache Kafka 4.x accepts; maxVersion the newest
// kmsg encodes. advertiseV0 makes ApiVersions advertise v0 although requests
// below minVersion are refused (Produce: librdkafka only compresses when it
// sees v0, KAFKA-18659; Kafka 4.x does the same).
type api struct {
	minVersion, maxVersion int16
	advertiseV0            bool
	handle                 handlerFunc
}

// advertisedMin is the lowest version ApiVersions lists.
func (a *api) advertisedMin() int16 {
	if a.advertiseV0 {
		return 0
	}
	return a.minVersion
}

// apis is the single declaration of every served API, indexed by API key so a
// duplicate entry fails to compile. ApiVersions is built from it.
var apis = [...]api{
	kmsg.Produce:          {minVersion: 3, maxVersion: 13, advertiseV0: true, handle: handleProduce},
	kmsg.Fetch:            {minVersion: 4, maxVersion: 18, handle: handleFetch},
	kmsg.ListOffsets:      {minVersion: 1, maxVersion: 11, handle: handleListOffsets},
	kmsg.Metadata:         {minVersion: 0, maxVersion: 13, handle: handleMetadata},
	kmsg.OffsetCommit:     {minVersion: 2, maxVersion: 10, handle: handleOffsetCommit},
	kmsg.OffsetFetch:      {minVersion: 1, maxVersion: 10, handle: handleOffsetFetch},
	kmsg.FindCoordinator:  {minVersion: 0, maxVersion: 6, handle: handleFindCoordinator},
	kmsg.JoinGroup:        {minVersion: 0, maxVersion: 9, handle: handleJoinGroup},
	kmsg.Heartbeat:        {minVersion: 0, maxVersion: 4, handle: handleHeartbeat},
	kmsg.LeaveGroup:       {minVersion: 0, maxVersion: 5, handle: handleLeaveGroup},
	kmsg.SyncGroup:        {minVersion: 0, maxVersion: 5, handle: handleSyncGroup},
	kmsg.DescribeGroups:   {minVersion: 0, maxVersion: 6, handle: handleDescribeGroups},
	kmsg.ListGroups:       {minVersion: 0, maxVersion: 5, handle: handleListGroups},
	kmsg.ApiVersions:      {minVersion: 0, maxVersion: 5, handle: handleApiVersions},
	kmsg.CreateTopics:     {minVersion: 2, maxVersion: 7, handle: handleCreateTopics},
	kmsg.DeleteTopics:     {minVersion: 1, maxVersion: 6, handle: handleDeleteTopics},
	kmsg.InitProducerID:   {minVersion: 0, maxVersion: 5, handle: handleInitProducerID},
	kmsg.CreatePartitions: {minVersion: 0, maxVersion: 3, handle: handleCreatePartitions},
	kmsg.ElectLeaders:     {minVersion: 0, maxVersion: 2, handle: handleElectLeaders},

	kmsg.OffsetForLeaderEpoch: {minVersion: 2, maxVersion: 4, handle: handleOffsetForLeaderEpoch},

	kmsg.AddPartitionsToTxn:   {minVersion: 0, maxVersion: 5, handle: handleAddPartitionsToTxn},
	kmsg.AddOffsetsToTxn:      {minVersion: 0, maxVersion: 4, handle: handleAddOffsetsToTxn},
	kmsg.EndTxn:               {minVersion: 0, maxVersion: 5, handle: handleEndTxn},
	kmsg.WriteTxnMarkers:      {minVersion: 0, maxVersion: 2, handle: handleWriteTxnMarkers},
	kmsg.TxnOffsetCommit:      {minVersion: 0, maxVersion: 6, handle: handleTxnOffsetCommit},
	kmsg.DescribeProducers:    {minVersion: 0, maxVersion: 0, handle: handleDescribeProducers},
	kmsg.DescribeTransactions: {minVersion: 0, maxVersion: 0, handle: handleDescribeTransactions},
	kmsg.ListTransactions:     {minVersion: 0, maxVersion: 2, handle: handleListTransactions},

	kmsg.ConsumerGroupHeartbeat: {minVersion: 0, maxVersion: 1, handle: handleConsumerGroupHeartbeat},
	kmsg.ConsumerGroupDescribe:  {minVersion: 0, maxVersion: 1, handle: handleConsumerGroupDescribe},
	kmsg.DescribeCluster:        {minVersion: 0, maxVersion: 2, handle: handleDescribeCluster},
	kmsg.DescribeConfigs:        {minVersion: 1, maxVersion: 4, handle: handleDescribeConfigs},
	kmsg.DeleteGroups:           {minVersion: 0, maxVersion: 3, handle: handleDeleteGroups},
	kmsg.OffsetDelete:           {minVersion: 0, maxVersion: 0, handle: handleOffsetDelete},
	kmsg.AlterConfigs:           {minVersion: 0, maxVersion: 2, handle: handleAlterConfigs},

	kmsg.IncrementalAlterConfigs: {minVersion: 0, maxVersion: 1, handle: handleIncrementalAlterConfigs},
}

func lookupAPI(key int16) *api {
	if key < 0 || int(key) >= len(apis) || apis[key].handle == nil {
		return nil
	}
	return &apis[key]
}

// acceptsVersion reports whether a request at key/version is served. Like
// Kafka 4.x, versions below minVersion are refused even where ApiVersions
// advertises them (Produce v0–v2): the connection is closed.
func acceptsVersion(key, version int16) bool {
	a := lookupAPI(key)
	if a == nil {
		return false
	}
	return version >= a.minVersion && version <= a.maxVersion
}

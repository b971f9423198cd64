package group

import "context"

type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient attaches the request header's client ID and the connection's
// client host to ctx. JoinGroup reads them: Kafka names dynamic members
// "<client.id>-<uuid>" and DescribeGroups reports both.
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{id: clientID, host: clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	c, _ := ctx.Value(clientKey{}).(clientInfo)
	return c
}

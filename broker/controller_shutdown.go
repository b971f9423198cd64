package broker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kbroker/kbroker/etcd"
)

// controlledShutdownTimeout bounds how long a stopping broker waits for the
// controller to move its leaderships away: Kafka's default
// controlled.shutdown.max.retries (3) times controlled.shutdown.retry.backoff.ms
// (5 s).
const controlledShutdownTimeout = 15 * time.Second

// controlledShutdown is the broker's side of a controlled shutdown (Kafka's
// ControlledShutdown request): it marks its registration ShuttingDown and
// waits, up to controlledShutdownTimeout or ctx, until the image shows that
// the controller has moved away every leadership it can move and taken this
// broker out of every ISR it can, so that clients and acks=all producers
// switch to the new leaders before this broker stops serving. Call it while
// the broker still serves and, if it is the controller, while its
// controller loop still runs: that loop does the moving. Partitions with no
// other live in-sync replica stay led by this broker, as in Kafka.
//
// The returned error says what was left undone; shutting down anyway is
// safe (the lease expiry that follows is an ordinary broker failure).
func (b *Broker) controlledShutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, controlledShutdownTimeout)
	defer cancel()
	start := time.Now()
	rev, err := b.registration().SetShuttingDown(ctx)
	if err != nil {
		return fmt.Errorf("controlled shutdown: %w", err)
	}
	images, unsubscribe := b.view.Subscribe()
	defer unsubscribe()
	for {
		img := b.view.Image()
		pending := -1 // unknown until the image shows the flag
		if img.Revision >= rev {
			pending = shutdownPending(img, b.nodeID, b.uncleanFor)
			if pending == 0 {
				b.logger.Info("controlled shutdown: leaderships moved", "took", time.Since(start).Round(time.Millisecond))
				return nil
			}
		}
		if ctx.Err() != nil {
			if pending < 0 {
				return fmt.Errorf("controlled shutdown: shutting-down flag not visible: %w", ctx.Err())
			}
			return fmt.Errorf("controlled shutdown: %d partitions still led by or in sync on broker %d: %w",
				pending, b.nodeID, ctx.Err())
		}
		select {
		case _, ok := <-images:
			if !ok {
				return fmt.Errorf("controlled shutdown: %w", etcd.ErrViewClosed)
			}
		case <-ctx.Done():
			// Look at the newest image once more, then report.
		}
	}
}

// shutdownPending counts the partitions where the controller still has to
// move leadership away from broker id or take it out of the ISR: those
// where the controller's own decision for img would do so. Partitions it
// leads with no other live in-sync replica do not count.
func shutdownPending(img *etcd.Image, id int32, uncleanFor func(*etcd.Topic) func() bool) int {
	n := 0
	for _, t := range img.Topics {
		var unclean func() bool
		for _, p := range t.Partitions {
			cur := p.State
			if cur.Leader != id && !slices.Contains(cur.ISR, id) {
				continue
			}
			if unclean == nil {
				unclean = uncleanFor(t)
			}
			next, _, ok := planFailover(img, t.Name, p, unclean)
			if ok && (cur.Leader == id && next.Leader != id || slices.Contains(cur.ISR, id) && !slices.Contains(next.ISR, id)) {
				n++
			}
		}
	}
	return n
}

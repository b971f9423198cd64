package runtime

import (
	"context"
	"fmt"
)

// Append writes recs as one batch, as p, and once the log committed it
// replays the records (Config.Replay, each at its offset) and calls
// then(nil) on the loop. If the append fails nothing is replayed and then
// gets the error, which wraps Errors.Closed when the loop was closed
// meanwhile. Call it on the loop.
//
// Appends run on their own goroutine, chained so that batches reach the
// log, and are replayed, in submission order while the loop keeps serving.
func (l *Loop) Append(recs []Record, p Producer, then func(err error)) {
	b := BuildBatch(recs, l.cfg.Now().UnixMilli(), p)
	prev := l.lastWrite
	cur := make(chan struct{})
	l.lastWrite = cur
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		defer close(cur) // after the Post below: Flush relies on it
		if prev != nil {
			select {
			case <-prev:
			case <-l.ctx.Done():
			}
		}
		err := l.ctx.Err()
		var base int64
		if err != nil {
			err = l.cfg.Errors.Closed
		} else if base, err = l.cfg.Log.Append(l.ctx, b); err != nil && l.ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", l.cfg.Errors.Closed, err)
		}
		l.Post(func() {
			if err != nil {
				l.cfg.Logger.Warn("writing to "+l.cfg.Topic+" failed", "partition", l.cfg.Partition, "records", len(recs), "err", err)
				then(err)
				return
			}
			pid := int64(-1)
			if p.Transactional {
				pid = p.ID
			}
			for i, r := range recs {
				l.cfg.Replay(Entry{Offset: base + int64(i), ProducerID: pid, Record: r})
			}
			then(nil)
		})
	}()
}

// Flush waits until every append submitted before it has finished and
// posted its outcome to the loop, so that a closure posted after Flush
// returns runs after those appends were replayed. It fails with
// Errors.Closed once the loop stopped.
func (l *Loop) Flush() error {
	var prev chan struct{}
	if err := l.Do(context.Background(), func() { prev = l.lastWrite }); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	select {
	case <-prev:
		return nil
	case <-l.done:
		return l.cfg.Errors.Closed
	}
}

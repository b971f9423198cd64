package broker

import (
	"math/bits"
	"sync"
)

// framePool recycles request buffers larger than a connection keeps
// (maxRetainedReadBuffer), in power-of-two size classes. Without it every
// large produce request allocated and zeroed a fresh multi-megabyte buffer,
// and the garbage collector then spent a tenth of the broker's CPU on them.
// It keeps at most framePoolBudget bytes, so the memory it holds is bounded
// by that constant rather than by traffic (a sync.Pool let the heap, and
// the broker's peak RSS under the benchmark, grow by tens of megabytes).
type framePool struct {
	mu       sync.Mutex
	free     [framePoolClasses][][]byte
	retained int // bytes in free
}

const (
	framePoolMinShift = 21       // 2 MiB: the first class above maxRetainedReadBuffer
	framePoolClasses  = 4        // up to 16 MiB; larger frames are allocated and dropped
	framePoolBudget   = 16 << 20 // most bytes kept for reuse
)

// classOf returns the size class of n (the smallest power of two >= n) and
// whether it is pooled.
func classOf(n int) (int, bool) {
	shift := bits.Len(uint(n - 1))
	shift = max(shift, framePoolMinShift)
	i := shift - framePoolMinShift
	return i, i < framePoolClasses
}

// get returns a buffer of length size: a recycled one above what a
// connection keeps when one is free, a fresh one otherwise.
func (p *framePool) get(size int) []byte {
	i, ok := classOf(size)
	if !ok || size <= maxRetainedReadBuffer {
		return make([]byte, size)
	}
	p.mu.Lock()
	if n := len(p.free[i]); n > 0 {
		b := p.free[i][n-1]
		p.free[i] = p.free[i][:n-1]
		p.retained -= cap(b)
		p.mu.Unlock()
		return b[:size]
	}
	p.mu.Unlock()
	return make([]byte, size, 1<<(i+framePoolMinShift))
}

// put gives back a buffer from get once nothing refers to it; it is
// dropped when it is not of a class size or the budget is spent.
func (p *framePool) put(b []byte) {
	i, ok := classOf(cap(b))
	if !ok || cap(b) != 1<<(i+framePoolMinShift) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.retained+cap(b) > framePoolBudget {
		return
	}
	p.free[i] = append(p.free[i], b[:0])
	p.retained += cap(b)
}

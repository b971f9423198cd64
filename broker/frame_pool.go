package broker

import (
	"math/bits"
	"sync"
)

// framePool recycles request buffers larger than a connection keeps
// (maxRetainedReadBuffer), in power-of-two size classes. Without it every
// large produce request allocated and zeroed a fresh multi-megabyte buffer,
// and the garbage collector then spent a tenth of the broker's CPU on them.
// sync.Pool drops idle buffers over two GC cycles, so memory stays bounded
// by the traffic in flight, not by the traffic seen.
type framePool struct {
	classes [framePoolClasses]sync.Pool
}

const (
	framePoolMinShift = 21 // 2 MiB: the first class above maxRetainedReadBuffer
	framePoolClasses  = 8  // up to 256 MiB; larger frames are allocated and dropped
)

// classOf returns the size class of n (the smallest power of two >= n) and
// whether it is pooled.
func classOf(n int) (int, bool) {
	shift := bits.Len(uint(n - 1))
	shift = max(shift, framePoolMinShift)
	i := shift - framePoolMinShift
	return i, i < framePoolClasses
}

// get returns a buffer of length size: a pooled one above what a
// connection keeps, an exact fresh one below.
func (p *framePool) get(size int) []byte {
	i, ok := classOf(size)
	if !ok || size <= maxRetainedReadBuffer {
		return make([]byte, size)
	}
	if b, _ := p.classes[i].Get().(*[]byte); b != nil {
		return (*b)[:size]
	}
	return make([]byte, size, 1<<(i+framePoolMinShift))
}

// put gives back a buffer from get once nothing refers to it.
func (p *framePool) put(b []byte) {
	i, ok := classOf(cap(b))
	if !ok || cap(b) != 1<<(i+framePoolMinShift) {
		return // not one of ours
	}
	b = b[:0]
	p.classes[i].Put(&b)
}

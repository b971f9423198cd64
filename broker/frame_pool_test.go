package broker

import "testing"

func TestFramePool(t *testing.T) {
	var p framePool
	small := p.get(4096)
	if len(small) != 4096 || cap(small) != 4096 {
		t.Fatalf("small frame: len %d cap %d, want an exact 4096", len(small), cap(small))
	}
	big := p.get(3 << 20)
	if len(big) != 3<<20 || cap(big) != 4<<20 {
		t.Fatalf("3 MiB frame: len %d cap %d, want len 3 MiB in the 4 MiB class", len(big), cap(big))
	}
	big[0] = 42
	p.put(big)
	again := p.get(4 << 20)
	if cap(again) != 4<<20 || again[0] != 42 {
		t.Fatalf("4 MiB frame: cap %d first byte %d, want the recycled 4 MiB buffer", cap(again), again[0])
	}
	p.put(make([]byte, 5<<20)) // not a class size: dropped
	if b := p.get(5 << 20); cap(b) != 8<<20 {
		t.Fatalf("5 MiB frame: cap %d, want the 8 MiB class", cap(b))
	}
	huge := p.get(300 << 20)
	if cap(huge) != 300<<20 {
		t.Fatalf("300 MiB frame: cap %d, want exact (unpooled)", cap(huge))
	}
	// The budget bounds what is kept: 16 MiB of 8 MiB buffers is two.
	for i := 0; i < 5; i++ {
		p.put(make([]byte, 0, 8<<20))
	}
	if p.retained != framePoolBudget || len(p.free[2]) != 2 {
		t.Fatalf("after five 8 MiB puts: %d bytes in %d buffers kept, want %d in 2", p.retained, len(p.free[2]), framePoolBudget)
	}
}

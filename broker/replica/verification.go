package replica

// Transaction verification (KIP-890 part 1). A transactions-v1 producer
// adds a partition to its transaction with AddPartitionsToTxn before
// producing to it, but nothing stopped a batch that arrived late — after its
// transaction was aborted, say — from opening a new transaction on the
// partition that no coordinator would ever end: a hanging transaction that
// pins the last stable offset for good. So before a producer's first
// transactional batch on a partition, the leader asks the coordinator
// whether the partition is in the producer's transaction, and appends only
// if no marker for the producer was written in between; the guard below is
// how the append knows.

// VerificationGuard stands for one verification in flight for a producer
// on a partition. Concurrent verifications of the same producer share it;
// a transaction marker for the producer invalidates it.
type VerificationGuard struct {
	refs int // guarded by Partition.mu
}

// StartVerification returns the guard for a transactional batch of the
// producer, or nil when the producer already has a transaction open here
// (nothing to verify). Each non-nil guard must be released with
// EndVerification.
func (p *Partition) StartVerification(producerID int64) *VerificationGuard {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log.HasOngoingTransaction(producerID) {
		return nil
	}
	g := p.mu.verifying[producerID]
	if g == nil {
		if p.mu.verifying == nil {
			p.mu.verifying = make(map[int64]*VerificationGuard)
		}
		g = &VerificationGuard{}
		p.mu.verifying[producerID] = g
	}
	g.refs++
	return g
}

// HasOngoingTransaction reports whether the producer has a transaction
// open on this partition.
func (p *Partition) HasOngoingTransaction(producerID int64) bool {
	return p.log.HasOngoingTransaction(producerID)
}

// EndVerification releases a guard from StartVerification once its batch
// was appended or refused.
func (p *Partition) EndVerification(producerID int64, g *VerificationGuard) {
	if g == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g.refs--
	if g.refs <= 0 && p.mu.verifying[producerID] == g {
		delete(p.mu.verifying, producerID)
	}
}

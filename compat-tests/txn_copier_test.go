package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// copierRole runs TestTxnCopierProcess as one transactional copier, so the
// parent can SIGKILL it in the middle of a transaction: a real crash that
// neither ends the transaction nor leaves the group. A copier logs its
// client at Info, so a failing test shows only the end of that.
var copierRole = subprocessRole{
	what:        "transactional copier",
	test:        "TestTxnCopierProcess",
	env:         "KBROKER_COMPAT_TXN_COPIER",
	prefix:      "TXNCOPIER ",
	stderrShown: 2 << 10,
}

type copierConfig struct {
	Addr  string `json:"addr"`
	Group string `json:"group"`
	In    string `json:"in"`
	Out   string `json:"out"`
	TxnID string `json:"txn_id"`
	Name  string `json:"name"`
	// MaxPoll bounds the records copied per transaction; DwellMs is the
	// most a copier waits between producing and committing, so that
	// kills land inside open transactions.
	MaxPoll int `json:"max_poll"`
	DwellMs int `json:"dwell_ms"`
	// Classic caps TxnOffsetCommit below v5, which keeps franz-go on the
	// pre-KIP-890 path (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
	// without an epoch bump) that Kafka 3.x clients use.
	Classic bool `json:"classic"`
}

// copierEvent is one line a copier reports.
type copierEvent struct {
	Kind      string `json:"k"` // txn, problem, fatal
	Committed bool   `json:"c,omitempty"`
	N         int    `json:"n,omitempty"`
	Msg       string `json:"msg,omitempty"`
}

// TestTxnCopierProcess is not a test on its own: it is the body of a copier
// subprocess started by startCopier, and skips otherwise. It is Kafka's
// exactly-once copier: consume in a group with read_committed, produce
// every record to the output topic and commit the consumed offsets in the
// same transaction (franz-go's GroupTransactSession).
func TestTxnCopierProcess(t *testing.T) {
	var cfg copierConfig
	copierRole.config(t, &cfg)
	emit := eventEmitter[copierEvent](copierRole)
	fatal := func(format string, args ...any) {
		emit(copierEvent{Kind: "fatal", Msg: fmt.Sprintf(format, args...)})
		os.Exit(3)
	}
	var extra []kgo.Opt
	if cfg.Classic {
		v := kversion.Stable()
		v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 4)
		extra = append(extra, kgo.MaxVersions(v))
	}
	sess, err := kgo.NewGroupTransactSession(append(extra,
		kgo.SeedBrokers(cfg.Addr),
		kgo.ClientID("compat-"+cfg.Name),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") })),
		kgo.TransactionalID(cfg.TxnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.In),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.FetchMaxWait(300*time.Millisecond),
		kgo.RequestTimeoutOverhead(5*time.Second),
	)...)
	if err != nil {
		fatal("new session: %v", err)
	}
	// Never closed: the parent kills this process.
	ctx := context.Background()
	for {
		fs := sess.PollRecords(ctx, cfg.MaxPoll)
		fs.EachError(func(topic string, p int32, err error) {
			emit(copierEvent{Kind: "problem", Msg: fmt.Sprintf("poll %s/%d: %v", topic, p, err)})
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			fatal("begin: %v", err)
		}
		promise := kgo.AbortingFirstErrPromise(sess.Client())
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sess.Produce(ctx, &kgo.Record{
				Topic:   cfg.Out,
				Key:     r.Key,
				Value:   r.Value,
				Headers: []kgo.RecordHeader{{Key: "src", Value: fmt.Appendf(nil, "%d/%d", r.Partition, r.Offset)}},
			}, promise.Promise())
		})
		// Workload shaping, not synchronisation: the transaction stays
		// open a while so that the parent's kills land inside it.
		time.Sleep(time.Duration(rand.IntN(cfg.DwellMs+1)) * time.Millisecond)
		produceErr := promise.Err()
		committed, err := sess.End(ctx, produceErr == nil)
		ev := copierEvent{Kind: "txn", Committed: committed, N: n}
		if produceErr != nil {
			ev.Msg = fmt.Sprintf("produce: %v", produceErr)
		}
		emit(ev)
		if err != nil {
			fatal("end transaction (produce error %v): %v", produceErr, err)
		}
	}
}

// copierFleet is the parent's view of the copier subprocesses; the event
// readers and the test goroutine share it under mu.
type copierFleet struct {
	t   *testing.T
	cfg copierConfig

	mu       sync.Mutex
	copied   int // records in committed transactions, as the copiers report
	commits  int
	aborts   int
	fatals   []string
	problems []string
}

// start runs a copier subprocess (see TestTxnCopierProcess).
func (f *copierFleet) start(name, txnID string) *subprocess {
	f.t.Helper()
	cfg := f.cfg
	cfg.Name, cfg.TxnID = name, txnID
	return startSubprocess(f.t, copierRole, name, cfg, func(line string) { f.record(name, line) })
}

// record counts one event line of copier name.
func (f *copierFleet) record(name, line string) {
	var ev copierEvent
	err := json.Unmarshal([]byte(line), &ev)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil:
		f.problems = append(f.problems, fmt.Sprintf("%s: bad event %q: %v", name, line, err))
	case ev.Kind == "txn" && ev.Committed:
		f.commits++
		f.copied += ev.N
	case ev.Kind == "txn":
		f.aborts++
	case ev.Kind == "fatal":
		f.fatals = append(f.fatals, name+": "+ev.Msg)
	case ev.Kind == "problem":
		f.problems = append(f.problems, name+": "+ev.Msg)
	}
}

// copierValue is the value of the seq-th record of key: every record
// carries its key and its position among that key's records.
func copierValue(key string, seq int) string { return fmt.Sprintf("%s|%05d", key, seq) }

// TestTxnCopier is Kafka's transactions system test: an input topic of
// keyed records, each value carrying its sequence within its key, is copied
// by a group of three transactional copiers (GroupTransactSession: consume
// with read_committed, produce, and commit the consumed offsets inside the
// transaction) that are SIGKILLed and restarted at random while they run.
// Afterwards the output topic, read with read_committed, holds every input
// record exactly once and, per key, in order.
//
// It runs twice: with franz-go's default transactions v2 (KIP-890: Produce
// and TxnOffsetCommit v5+ add partitions implicitly, EndTxn bumps the
// epoch), as against Kafka 4, and with the classic protocol of Kafka 3.x
// clients (AddPartitionsToTxn, AddOffsetsToTxn).
func TestTxnCopier(t *testing.T) {
	t.Run("transactions_v2", func(t *testing.T) { testTxnCopier(t, false) })
	t.Run("classic", func(t *testing.T) { testTxnCopier(t, true) })
}

func testTxnCopier(t *testing.T, classic bool) {
	const (
		in, out    = "txn-copy-in", "txn-copy-out"
		partitions = 6
		keys       = 100
		perKey     = 200
		total      = keys * perKey
		copiers    = 3
		maxKills   = 6
	)
	b := startTxnBroker(t)
	if v, ok := apiVersionsMap(t, b)[int16(kmsg.TxnOffsetCommit)]; !ok {
		t.Fatalf("broker does not advertise TxnOffsetCommit (key 28): GroupTransactSession cannot commit offsets inside a transaction")
	} else {
		t.Logf("TxnOffsetCommit v%d-%d advertised", v.MinVersion, v.MaxVersion)
	}
	adm := newAdmin(t, b)
	createTopic(t, adm, in, partitions, nil)
	createTopic(t, adm, out, partitions, nil)

	// Input: record i is key i%keys, its (i/keys)-th record.
	p := newClient(t, b, kgo.DefaultProduceTopic(in), kgo.ProducerLinger(5*time.Millisecond))
	ctx := testCtx(t, 4*time.Minute)
	for chunk := 0; chunk < total; chunk += 2000 {
		recs := make([]*kgo.Record, 0, 2000)
		for i := chunk; i < chunk+2000; i++ {
			key := fmt.Sprintf("key-%03d", i%keys)
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(copierValue(key, i/keys))})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce input: %v", err)
		}
	}
	p.Close()
	inEnds := endOffsets(t, adm, in)

	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	f := &copierFleet{t: t, cfg: copierConfig{Addr: b.Addr(), Group: "txn-copiers", In: in, Out: out, MaxPoll: 100, DwellMs: 200, Classic: classic}}
	procs := make([]*subprocess, copiers)
	for i := range procs {
		procs[i] = f.start(fmt.Sprintf("copier-%d", i), fmt.Sprintf("copier-txn-%d", i))
	}

	// Chaos: every 1–2.5 s kill one copier (sometimes two) with SIGKILL and
	// restart it under the same transactional ID after up to a second,
	// until maxKills or most of the input is copied; restart any copier that
	// died on its own. Stop when the group's committed offsets reach the
	// end of the input.
	var (
		kills, selfExits int
		lastProgress     = time.Now()
		lastCopied       int
		nextKill         = time.Now().Add(time.Second)
	)
	groupDone := func() (bool, string) {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(c, f.cfg.Group)
		if err != nil {
			return false, err.Error()
		}
		var behind []string
		for part, end := range inEnds {
			switch o, ok := offs.Lookup(in, part); {
			case !ok:
				behind = append(behind, fmt.Sprintf("%d: no committed offset/%d", part, end))
			case o.Err != nil:
				behind = append(behind, fmt.Sprintf("%d: %v", part, o.Err))
			case o.At != end:
				behind = append(behind, fmt.Sprintf("%d: %d/%d", part, o.At, end))
			}
		}
		return len(behind) == 0, strings.Join(behind, ", ")
	}
	for {
		done, behind := groupDone()
		if done {
			break
		}
		f.mu.Lock()
		copied, fatals := f.copied, len(f.fatals)
		f.mu.Unlock()
		if copied != lastCopied {
			lastCopied, lastProgress = copied, time.Now()
		}
		if time.Since(lastProgress) > 40*time.Second {
			f.fail("no progress for 40 s (group behind on %s)", behind)
		}
		if ctx.Err() != nil {
			f.fail("copy not finished in time (group behind on %s)", behind)
		}
		if fatals > 8 {
			f.fail("copiers failed on their own %d times", fatals)
		}
		for i, cp := range procs {
			if !cp.alive() {
				selfExits++
				procs[i] = f.start(cp.name, fmt.Sprintf("copier-txn-%d", i))
			}
		}
		if kills < maxKills && time.Now().After(nextKill) && copied > total/50 && copied < total*9/10 {
			victims := []int{rng.IntN(copiers)}
			if rng.IntN(4) == 0 {
				victims = append(victims, (victims[0]+1+rng.IntN(copiers-1))%copiers)
			}
			for _, v := range victims {
				procs[v].kill()
				kills++
			}
			// Pacing: a restarted copier's predecessor stays in the group
			// until its session times out, sometimes longer than this.
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			for _, v := range victims {
				procs[v] = f.start(procs[v].name, fmt.Sprintf("copier-txn-%d", v))
			}
			t.Logf("killed %v at %d/%d records copied", victims, copied, total)
			nextKill = time.Now().Add(time.Second + time.Duration(rng.IntN(1500))*time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	for _, cp := range procs {
		cp.kill()
	}
	f.mu.Lock()
	t.Logf("copy done: %d kills, %d copiers died on their own, %d commits, %d aborts, %d problems reported",
		kills, selfExits, f.commits, f.aborts, len(f.problems))
	for i, fa := range f.fatals {
		if i < 5 {
			t.Logf("copier failure: %s", fa)
		}
	}
	f.mu.Unlock()
	if kills == 0 {
		t.Errorf("no copier was killed while copying: the chaos did not run")
	}

	committed := readVisible(t, b, out, partitions, kgo.ReadCommitted(), 60*time.Second)
	checkCopied(t, committed, keys, perKey)
	all := readVisible(t, b, out, partitions, kgo.ReadUncommitted(), 60*time.Second)
	n := 0
	for _, rs := range all {
		n += len(rs)
	}
	t.Logf("output log holds %d records; %d of them in aborted transactions", n, n-total)
	if n < total {
		t.Errorf("read_uncommitted sees %d records, fewer than the %d read_committed sees", n, total)
	}
}

// fail stops the test with the fleet's diagnostics.
func (f *copierFleet) fail(format string, args ...any) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	msg += fmt.Sprintf("; %d records copied in %d commits, %d aborts", f.copied, f.commits, f.aborts)
	for i, fa := range f.fatals {
		if i >= 5 {
			break
		}
		msg += "\n  copier failure: " + fa
	}
	for i, pr := range f.problems {
		if i >= 5 {
			break
		}
		msg += "\n  copier problem: " + pr
	}
	f.t.Fatal(msg)
}

// checkCopied requires every key's records 0..perKey-1 exactly once and in
// order, each under its own key, and nothing else.
func checkCopied(t *testing.T, recs map[int32][]*kgo.Record, keys, perKey int) {
	t.Helper()
	next := make(map[string]int, keys)
	keyPart := make(map[string]int32, keys)
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for part, rs := range recs {
		for _, r := range rs {
			key, seqStr, ok := strings.Cut(string(r.Value), "|")
			seq, err := strconv.Atoi(seqStr)
			if !ok || err != nil || string(r.Key) != key {
				report("output %d@%d: key %q value %q is no input record", part, r.Offset, r.Key, r.Value)
				continue
			}
			if p, seen := keyPart[key]; seen && p != part {
				report("output: key %s in partitions %d and %d", key, p, part)
			}
			keyPart[key] = part
			switch want := next[key]; {
			case seq == want:
				next[key]++
			case seq < want:
				report("output %d@%d: %s again (already had up to %d): duplicate, src %s", part, r.Offset, r.Value, want-1, srcHeader(r))
			default:
				report("output %d@%d: %s, expected %s next: missing or out of order, src %s", part, r.Offset, r.Value, copierValue(key, want), srcHeader(r))
				next[key] = seq + 1
			}
		}
	}
	if len(next) != keys {
		report("output has %d keys, input %d", len(next), keys)
	}
	for key, n := range next {
		if n != perKey {
			report("key %s: output ends at record %d, input has %d", key, n, perKey)
		}
	}
	if bad > 10 {
		t.Errorf("… %d problems in all", bad)
	}
}

func srcHeader(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "src" {
			return string(h.Value)
		}
	}
	return "?"
}

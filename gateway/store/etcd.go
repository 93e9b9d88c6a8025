package store

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthgw/berth/gateway/fault"
)

// EtcdOptions say how to reach the etcd cluster the store lives in.
type EtcdOptions struct {
	// Endpoints are the client URLs of the members, e.g.
	// https://10.0.0.1:2379.
	Endpoints []string
	// Prefix is put before every key, so Berth can share an etcd cluster;
	// DefaultEtcdPrefix when empty.
	Prefix string
	// TLS, when set, is the client's TLS configuration (the CA that signed
	// the members' certificates and the client certificate).
	TLS *tls.Config
	// DialTimeout bounds connecting; RequestTimeout bounds each call.
	DialTimeout, RequestTimeout time.Duration
	// MaxTxnOps is etcd's --max-txn-ops (the most compares, and the most
	// writes, one transaction may carry); DefaultEtcdMaxTxnOps when zero.
	MaxTxnOps int
}

// Defaults of unset EtcdOptions fields; etcd's own defaults where the
// setting mirrors one of etcd's.
const (
	DefaultEtcdPrefix         = "/berth/"
	DefaultEtcdDialTimeout    = 5 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
	DefaultEtcdMaxTxnOps      = 128
)

const (
	// etcdPageSize is how many keys one range request of a scan asks for.
	etcdPageSize = 256
	// perKeyReadCompares is how many read keys of one transaction get a
	// compare of their own; past it, reads are checked through their
	// tables' generation keys, so no transaction exceeds etcd's compare
	// limit however much it reads.
	perKeyReadCompares = 32
	// leaseBucket rounds expiry times up, so records expiring close
	// together share one etcd lease instead of one lease each.
	leaseBucket = 60
)

// etcdEngine keeps the keys in etcd. Transactions are optimistic: reads
// are pinned to the revision of the transaction's first read, writes are
// buffered, and the commit is one etcd Txn that applies them only if every
// key read (and every table scanned) is unchanged since that revision.
type etcdEngine struct {
	cli        *clientv3.Client
	prefix     string
	reqTimeout time.Duration
	maxOps     int
	clock      func() time.Time
	log        *slog.Logger

	leaseMu sync.Mutex
	leases  map[int64]grantedLease // by expiry bucket (Unix seconds)

	// lastHeard is when (Unix nanoseconds) follow last knew its watch
	// was caught up (its start, a progress notice); zero before.
	lastHeard atomic.Int64

	// ownMu guards own, the revisions of this engine's recent commits,
	// which follow leaves out: their hooks ran when they committed.
	ownMu sync.Mutex
	own   map[int64]bool
	order []int64
}

// maxOwnRevisions bounds the commits remembered as this engine's; the
// watch delivers a commit within moments, long before this many more.
const maxOwnRevisions = 4096

func (e *etcdEngine) noteOwn(rev int64) {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	e.own[rev] = true
	e.order = append(e.order, rev)
	if len(e.order) > maxOwnRevisions {
		delete(e.own, e.order[0])
		e.order = e.order[1:]
	}
}

func (e *etcdEngine) isOwn(rev int64) bool {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	return e.own[rev]
}

type grantedLease struct {
	id  clientv3.LeaseID
	end time.Time // when etcd will revoke it, on this process's clock
}

func openEtcd(opts EtcdOptions, clock func() time.Time, logger *slog.Logger) (*etcdEngine, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("store: etcd backend without endpoints")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = DefaultEtcdDialTimeout
	}
	req := opts.RequestTimeout
	if req <= 0 {
		req = DefaultEtcdRequestTimeout
	}
	maxOps := opts.MaxTxnOps
	if maxOps <= 0 {
		maxOps = DefaultEtcdMaxTxnOps
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		TLS:         opts.TLS,
		DialTimeout: dial,
		// Keepalives notice a dead member within seconds, so the client
		// moves to another instead of waiting on a dead connection.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: connecting to etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	e := &etcdEngine{cli: cli, prefix: prefix, reqTimeout: req, maxOps: maxOps, clock: clock, log: logger, leases: map[int64]grantedLease{}, own: map[int64]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), dial+req)
	defer cancel()
	if err := e.ready(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("store: etcd %s does not answer: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return e, nil
}

func (e *etcdEngine) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.reqTimeout)
}

func (e *etcdEngine) ready(ctx context.Context) error {
	// A linearizable read needs a quorum: a member cut off from the others
	// does not answer it, so neither is this replica ready.
	_, err := e.cli.Get(ctx, e.prefix+schemaKey, clientv3.WithCountOnly())
	return err
}

// maxTxnBytes: etcd's default --max-request-bytes is 1.5 MiB; a cluster
// may lower it, so Berth counts on 1 MiB.
func (e *etcdEngine) maxTxnBytes() int { return 1 << 20 }

func (e *etcdEngine) close() error { return e.cli.Close() }

func (e *etcdEngine) update(fn func(kvTxn) error) error {
	t := e.newTxn()
	if err := fn(t); err != nil {
		return translate(err)
	}
	return translate(t.commit())
}

func (e *etcdEngine) view(fn func(kvTxn) error) error {
	t := e.newTxn()
	t.readOnly = true
	return translate(fn(t))
}

// translate turns etcd's "compacted" (the pinned revision is gone) into a
// conflict, so the transaction runs again at a newer revision.
func translate(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return errConflict
	}
	return err
}

// unavailable marks an error of a call to etcd: the store is out of reach
// (no quorum, no connection, a timeout), and the request that needed it
// gets 503 and may try again.
func unavailable(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err // handled by the transaction's retry
	}
	return fault.Wrap(fault.Unavailable, err, "the store is unavailable").Retry(time.Second)
}

func (e *etcdEngine) newTxn() *etcdTxn {
	return &etcdTxn{eng: e, reads: map[string]int64{}, writes: map[string]pendingWrite{}}
}

// loadBatchBytes bounds the keys and values of one restore request, well
// under etcd's default --max-request-bytes (1.5 MiB).
const loadBatchBytes = 1 << 20

// load writes entries in batches of at most maxOps puts and about
// loadBatchBytes.
func (e *etcdEngine) load(entries []entry) error {
	for start := 0; start < len(entries); {
		end, size := start, 0
		for end < len(entries) && end-start < e.maxOps && (end == start || size+len(entries[end].key)+len(entries[end].value) <= loadBatchBytes) {
			size += len(entries[end].key) + len(entries[end].value)
			end++
		}
		ops := make([]clientv3.Op, 0, end-start)
		for _, en := range entries[start:end] {
			op, err := e.putOp(en)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		ctx, cancel := e.ctx()
		_, err := e.cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("writing keys %d to %d: %w", start, end, unavailable(err))
		}
		start = end
	}
	return nil
}

func (e *etcdEngine) clear() error {
	for _, p := range storePrefixes {
		ctx, cancel := e.ctx()
		_, err := e.cli.Delete(ctx, e.prefix+p, clientv3.WithPrefix())
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// putOp is the etcd write of en: its value behind an 8-byte expiry, on a
// lease when it expires.
func (e *etcdEngine) putOp(en entry) (clientv3.Op, error) {
	var opts []clientv3.OpOption
	if en.expiresAt != 0 {
		lease, err := e.leaseFor(int64(en.expiresAt))
		if err != nil {
			return clientv3.Op{}, err
		}
		opts = append(opts, clientv3.WithLease(lease))
	}
	return clientv3.OpPut(e.prefix+en.key, string(encodeValue(en)), opts...), nil
}

// leaseFor returns a lease that outlives expiresAt, shared by every record
// expiring in the same minute. etcd removes the keys some seconds after
// they expire; until then the store's own expiry check hides them.
func (e *etcdEngine) leaseFor(expiresAt int64) (clientv3.LeaseID, error) {
	bucket := (expiresAt/leaseBucket + 1) * leaseBucket
	now := time.Now()
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	if l, ok := e.leases[bucket]; ok && now.Add(time.Minute).Before(l.end) {
		return l.id, nil
	}
	// The TTL is measured on the store's clock, which tests move; at least
	// a bucket, so a record written already expired still gets a lease.
	ttl := max(bucket-e.clock().Unix(), 0) + leaseBucket
	ctx, cancel := e.ctx()
	defer cancel()
	resp, err := e.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("granting an etcd lease: %w", unavailable(err))
	}
	e.leases[bucket] = grantedLease{id: resp.ID, end: now.Add(time.Duration(resp.TTL) * time.Second)}
	for b, l := range e.leases {
		if !now.Before(l.end) {
			delete(e.leases, b)
		}
	}
	return resp.ID, nil
}

// forgetLeases drops every cached lease, after etcd said one is gone.
func (e *etcdEngine) forgetLeases() {
	e.leaseMu.Lock()
	clear(e.leases)
	e.leaseMu.Unlock()
}

// encodeValue puts the expiry, 8 bytes big-endian, before the value: the
// store checks expiry itself and etcd's lease only says when the key goes.
func encodeValue(en entry) []byte {
	b := make([]byte, 8, 8+len(en.value))
	binary.BigEndian.PutUint64(b, en.expiresAt)
	return append(b, en.value...)
}

func decodeValue(key string, raw []byte) (entry, error) {
	if len(raw) < 8 {
		return entry{}, fmt.Errorf("store: malformed value at %s", key)
	}
	return entry{key: key, value: raw[8:], expiresAt: binary.BigEndian.Uint64(raw[:8])}, nil
}

// etcdTxn is one optimistic transaction on etcd.
type etcdTxn struct {
	eng      *etcdEngine
	readOnly bool
	// rev is the revision every read is pinned to, set by the first read.
	rev int64
	// reads maps each key read to its ModRevision at rev (0: absent).
	reads  map[string]int64
	writes map[string]pendingWrite
}

type pendingWrite struct {
	entry
	deleted bool
}

// get reads a key at the pinned revision, or this transaction's own write
// of it.
func (t *etcdTxn) get(key string) (entry, error) {
	if w, ok := t.writes[key]; ok {
		if w.deleted {
			return entry{}, errKeyNotFound
		}
		return w.entry, nil
	}
	resp, err := t.rangeAt(key, "", 0, false)
	if err != nil {
		return entry{}, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		t.noteRead(key, 0)
		return entry{}, errKeyNotFound
	}
	kv := resp.Kvs[0]
	t.noteRead(key, kv.ModRevision)
	return decodeValue(key, kv.Value)
}

func (t *etcdTxn) noteRead(key string, modRev int64) {
	if _, seen := t.reads[key]; !seen {
		t.reads[key] = modRev
	}
}

// rangeAt reads [key, end) (just key when end is empty) at the pinned
// revision, pinning it on the first read.
func (t *etcdTxn) rangeAt(key, end string, limit int64, descend bool) (*clientv3.GetResponse, error) {
	opts := []clientv3.OpOption{}
	if end != "" {
		opts = append(opts, clientv3.WithRange(t.eng.prefix+end))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	if descend {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	}
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.eng.ctx()
	defer cancel()
	resp, err := t.eng.cli.Get(ctx, t.eng.prefix+key, opts...)
	if err != nil {
		return nil, unavailable(err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *etcdTxn) set(en entry) error {
	if t.readOnly {
		return errors.New("store: write in a read-only transaction")
	}
	t.writes[en.key] = pendingWrite{entry: en}
	return nil
}

func (t *etcdTxn) delete(key string) error {
	if t.readOnly {
		return errors.New("store: write in a read-only transaction")
	}
	t.writes[key] = pendingWrite{entry: entry{key: key}, deleted: true}
	return nil
}

// scan pages through the keys under prefix at the pinned revision and
// merges this transaction's own writes into the walk.
func (t *etcdTxn) scan(prefix string, o scanOrder, fn func(entry) (bool, error)) error {
	end := rangeEnd(prefix)
	// lo and hi bound the keys still to walk: [lo, hi).
	lo, hi := prefix, end
	if o.after != "" {
		if o.reverse {
			hi = o.after
		} else {
			lo = o.after + "\x00"
		}
	}
	for {
		resp, err := t.rangeAt(lo, hi, etcdPageSize, o.reverse)
		if err != nil {
			return fmt.Errorf("etcd scan %s: %w", prefix, err)
		}
		page := make([]entry, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			key := string(kv.Key[len(t.eng.prefix):])
			en, err := decodeValue(key, kv.Value)
			if err != nil {
				return err
			}
			page = append(page, en)
		}
		// The page covers [lo, hi) when it is the last one, else up to
		// and including its last key: own writes in that span join it.
		spanLo, spanHi := lo, hi
		if resp.More && len(resp.Kvs) > 0 {
			last := string(resp.Kvs[len(resp.Kvs)-1].Key[len(t.eng.prefix):])
			if o.reverse {
				spanLo = last
			} else {
				spanHi = last + "\x00"
			}
		}
		for _, en := range t.merge(page, spanLo, spanHi, o.reverse) {
			more, err := fn(en)
			if err != nil || !more {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		if o.reverse {
			hi = spanLo
		} else {
			lo = spanHi
		}
	}
}

// merge overlays this transaction's writes in [lo, hi) on a page read
// from etcd, in the walk's order.
func (t *etcdTxn) merge(page []entry, lo, hi string, reverse bool) []entry {
	if len(t.writes) == 0 {
		return page
	}
	byKey := make(map[string]entry, len(page))
	for _, en := range page {
		byKey[en.key] = en
	}
	for key, w := range t.writes {
		if key < lo || key >= hi {
			continue
		}
		if w.deleted {
			delete(byKey, key)
		} else {
			byKey[key] = w.entry
		}
	}
	out := make([]entry, 0, len(byKey))
	for _, en := range byKey {
		out = append(out, en)
	}
	slices.SortFunc(out, func(a, b entry) int {
		if reverse {
			return strings.Compare(b.key, a.key)
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}

// commit applies the buffered writes if nothing read has changed.
func (t *etcdTxn) commit() error {
	if len(t.writes) == 0 {
		return nil // a snapshot read needs no commit
	}
	cmps, err := t.compares()
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, len(t.writes))
	keys := make([]string, 0, len(t.writes))
	for key := range t.writes {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		w := t.writes[key]
		if w.deleted {
			ops = append(ops, clientv3.OpDelete(t.eng.prefix+key))
		} else {
			op, err := t.eng.putOp(w.entry)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
	}
	if len(ops) > t.eng.maxOps {
		return fmt.Errorf("store: a transaction of %d etcd writes exceeds the %d etcd allows (raise etcd's --max-txn-ops and store.etcd.max_txn_ops together)", len(ops), t.eng.maxOps)
	}
	ctx, cancel := t.eng.ctx()
	defer cancel()
	resp, err := t.eng.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		t.eng.forgetLeases()
		return errConflict
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("store: the transaction is larger than etcd's --max-request-bytes: %w", err)
	case err != nil:
		return fmt.Errorf("etcd commit: %w", unavailable(err))
	case !resp.Succeeded:
		return errConflict
	}
	t.eng.noteOwn(resp.Header.Revision)
	return nil
}

// compares are the conditions of the commit: every key read still at the
// revision it had. Past perKeyReadCompares reads, the reads of a table are
// checked through its generation key instead (see Tx.readTable), which
// every write to the table moves.
func (t *etcdTxn) compares() ([]clientv3.Cmp, error) {
	reads := t.reads
	if len(reads) > perKeyReadCompares {
		reads = map[string]int64{}
		for key, rev := range t.reads {
			table := tableOf(key)
			if table == "" {
				reads[key] = rev
				continue
			}
			gen := generationKey(table)
			if _, ok := reads[gen]; ok {
				continue
			}
			if rev, ok := t.reads[gen]; ok {
				reads[gen] = rev
				continue
			}
			resp, err := t.rangeAt(gen, "", 0, false)
			if err != nil {
				return nil, fmt.Errorf("etcd get %s: %w", gen, err)
			}
			reads[gen] = 0
			if len(resp.Kvs) > 0 {
				reads[gen] = resp.Kvs[0].ModRevision
			}
		}
	}
	if len(reads) > t.eng.maxOps {
		return nil, fmt.Errorf("store: a transaction with %d conditions exceeds the %d etcd allows", len(reads), t.eng.maxOps)
	}
	cmps := make([]clientv3.Cmp, 0, len(reads))
	for key, rev := range reads {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.eng.prefix+key), "=", rev))
	}
	return cmps, nil
}

// tableOf returns the table a key belongs to (v1/t/<table>/…, v1/u/…,
// v1/x/…, v1/g/<table>), or "" for keys outside the tables.
func tableOf(key string) string {
	if table, ok := strings.CutPrefix(key, generationPrefix); ok {
		return table
	}
	for _, p := range []string{recordPrefix, uniquePrefix, plainPrefix, valueGenerationPrefix} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			if table, _, ok := strings.Cut(rest, "/"); ok {
				return table
			}
		}
	}
	return ""
}

// rangeEnd is the first key after every key with prefix ("" for the
// empty prefix would mean "to the end": the store's keys are all below
// \xff).
func rangeEnd(prefix string) string {
	if prefix == "" {
		return "\xff"
	}
	return clientv3.GetPrefixRangeEnd(prefix)
}

// nextRevision is where a watch resumes after wr: just past its last
// event. Not past its header's revision: a watch catching up gets its
// backlog in batches that each carry etcd's current revision, and resuming
// there would skip the rest of the backlog. A response without events (a
// progress notice) moves to its header's revision.
func nextRevision(wr clientv3.WatchResponse, next int64) int64 {
	if n := len(wr.Events); n > 0 {
		return wr.Events[n-1].Kv.ModRevision + 1
	}
	return max(next, wr.Header.Revision+1)
}

// heartbeatEvery is how often follow asks the watch to show it is caught
// up; Fresh's callers allow a few of these.
const heartbeatEvery = time.Second

// heartbeat asks etcd, every heartbeatEvery until ctx ends, for a progress
// notice on the watch stream of ctx (which must be the watch's own). etcd
// sends one only to a watch that has delivered everything up to the
// notice's revision, so a notice received says more than "etcd answers":
// this replica has heard every write until then.
func (e *etcdEngine) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = e.cli.RequestProgress(ctx) // no answer is the signal
	}
}

// follow calls fn with the records other writers put or delete, read from
// etcd's watch, until ctx ends; this engine's own commits are left out. It starts at
// the current revision. When the watch cannot resume where it stopped
// (etcd compacted the revisions it missed), fn gets AllChanged.
func (e *etcdEngine) follow(ctx context.Context, fn func([]Change)) error {
	ctx = clientv3.WithRequireLeader(ctx)
	// Where to start: the current revision, once etcd answers. Until
	// then (no leader, no connection) this replica is not Fresh.
	var next int64
	for next == 0 {
		resp, err := e.cli.Get(ctx, e.prefix+schemaKey, clientv3.WithCountOnly())
		if err == nil {
			next = resp.Header.Revision + 1
			break
		}
		e.log.Warn("store: cannot start following etcd yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	e.lastHeard.Store(time.Now().UnixNano())
	go e.heartbeat(ctx)
	for ctx.Err() == nil {
		for wr := range e.cli.Watch(ctx, e.prefix+recordPrefix, clientv3.WithPrefix(), clientv3.WithRev(next), clientv3.WithKeysOnly()) {
			if wr.CompactRevision != 0 {
				e.log.Warn("store: the etcd watch missed compacted revisions; treating every record as changed", "from", next, "compacted", wr.CompactRevision)
				fn([]Change{AllChanged})
				next = wr.CompactRevision
				break
			}
			if err := wr.Err(); err != nil {
				e.log.Warn("store: etcd watch ended; resuming", "err", err)
				break
			}
			if wr.IsProgressNotify() {
				e.lastHeard.Store(time.Now().UnixNano())
			}
			changes := make([]Change, 0, len(wr.Events))
			for _, ev := range wr.Events {
				if e.isOwn(ev.Kv.ModRevision) {
					continue
				}
				rest := string(ev.Kv.Key[len(e.prefix)+len(recordPrefix):])
				if table, id, ok := strings.Cut(rest, "/"); ok {
					changes = append(changes, Change{Table: table, ID: id})
				}
			}
			if len(changes) > 0 {
				fn(changes)
			}
			next = nextRevision(wr, next)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second): // a lost leader or a closed watch: try again
		}
	}
	return nil
}

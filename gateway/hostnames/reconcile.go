package hostnames

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// Run makes reconciler passes until ctx ends: every Interval, soon after
// a change (Wake), and after a failed pass again after a wait that
// doubles from RetryMin to RetryMax. It is a leader duty: one replica
// writes the zone.
func (s *Service) Run(ctx context.Context) {
	wait, failures := time.Duration(0), 0
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.wake:
			t.Stop()
		}
		if err := s.Pass(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = retryWait(failures, s.opts.RetryMin, s.opts.RetryMax)
			s.opts.Log.Warn("dns pass failed", "err", err, "retry_in", wait)
			continue
		}
		wait, failures = s.opts.Interval, 0
	}
}

// retryWait is the wait after the n-th failed pass in a row: doubling
// from lo, at most hi.
func retryWait(n int, lo, hi time.Duration) time.Duration {
	return min(lo<<min(n-1, 20), hi)
}

// want is one name Berth keeps in the zone.
type want struct {
	// resource is what the name is for: "cluster/<name>" or
	// "binding/<id>".
	resource string
	typ      string   // CNAME, or A/AAAA (values then of both)
	values   []string // normalized: lower case, no final dot
}

// pass is what one pass read from the store.
type pass struct {
	set      Settings
	live     []string
	bindings []Binding
}

// Pass makes the zone match what Berth wants once, records each name's
// outcome on its cluster or binding, and returns the pass's error (nil
// when every name is in sync).
func (s *Service) Pass(ctx context.Context) error {
	p, err := s.read()
	if err != nil {
		return err
	}
	if !p.set.Enabled() {
		return s.record(p, nil, nil, nil, s.resolveAll(ctx, p))
	}
	wants := s.wants(p)
	outcome := map[string]error{}
	var passErr error
	dns, err := s.opts.Provider(p.set.Plugin)
	var zone []sdk.Record
	if err == nil {
		zone, err = dns.GetRecords(ctx, p.set.ZoneName())
	}
	if err != nil {
		passErr = fmt.Errorf("reading zone %s through plugin %s: %w", p.set.ZoneName(), p.set.Plugin, err)
		for name := range wants {
			outcome[name] = passErr
		}
		return errors.Join(passErr, s.record(p, wants, outcome, passErr, nil))
	}
	z := newZoneView(p.set, zone)
	var failed []string
	for _, name := range slices.Sorted(maps.Keys(wants)) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		outcome[name] = s.ensure(ctx, dns, p.set, z, name, wants[name])
		if outcome[name] != nil {
			failed = append(failed, name)
		}
	}
	// Names Berth owns that nobody wants any more: a deleted cluster's,
	// an unbound hostname's, or one the base domain no longer holds.
	for _, name := range slices.Sorted(maps.Keys(z.owned)) {
		if _, ok := wants[name]; ok {
			continue
		}
		if err := s.remove(ctx, dns, p.set, z, name); err != nil {
			failed = append(failed, name)
			passErr = errors.Join(passErr, err)
		}
	}
	if len(failed) > 0 {
		passErr = errors.Join(fmt.Errorf("%d of the zone's names are not in sync (%s)", len(failed), strings.Join(failed[:min(len(failed), 5)], ", ")), passErr)
	}
	checks := s.resolveAll(ctx, p)
	return errors.Join(passErr, s.record(p, wants, outcome, passErr, checks))
}

// read loads the settings, the live clusters and every binding.
func (s *Service) read() (pass, error) {
	var p pass
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		if p.set, err = readSettings(tx); err != nil {
			return err
		}
		if p.live, err = clusters.LiveNames(tx); err != nil {
			return err
		}
		return bindings.Scan(tx, store.ScanOptions{}, func(_ string, b *Binding) (bool, error) {
			p.bindings = append(p.bindings, *b)
			return true, nil
		})
	})
	return p, err
}

// wants is the zone as Berth wants it: each live cluster's own name, and
// each platform-managed hostname of a live cluster pointing at it.
func (s *Service) wants(p pass) map[string]want {
	out := map[string]want{}
	for _, c := range p.live {
		w := want{resource: "cluster/" + c, typ: "CNAME", values: []string{p.set.TargetHostname}}
		if len(p.set.TargetAddresses) > 0 {
			w = want{resource: "cluster/" + c, typ: "A", values: p.set.TargetAddresses}
		}
		out[p.set.Target(c)] = w
	}
	for _, b := range p.bindings {
		if !slices.Contains(p.live, b.Cluster) || scope(p.set, b.Hostname) != PlatformManaged {
			continue
		}
		if _, taken := out[b.Hostname]; taken {
			continue // a cluster's own name (refused when bound; kept safe here)
		}
		out[b.Hostname] = want{resource: "binding/" + b.ID, typ: "CNAME", values: []string{p.set.Target(b.Cluster)}}
	}
	return out
}

// zoneView is the zone as read at the start of a pass.
type zoneView struct {
	zone   string // without the final dot
	byName map[string][]sdk.Record
	// owned are the names whose ownership record is this Berth's.
	owned map[string]bool
}

func newZoneView(set Settings, recs []sdk.Record) *zoneView {
	z := &zoneView{zone: strings.TrimSuffix(set.ZoneName(), "."), byName: map[string][]sdk.Record{}, owned: map[string]bool{}}
	for _, r := range recs {
		name := z.abs(r.Name)
		z.byName[name] = append(z.byName[name], r)
	}
	for name, rs := range z.byName {
		target, ok := ownedName(name)
		if !ok {
			continue
		}
		for _, r := range rs {
			if r.Type == "TXT" && ownedBy(r.Value, set.owner()) {
				z.owned[target] = true
			}
		}
	}
	return z
}

// abs is a record's name, fully qualified without the final dot.
func (z *zoneView) abs(rel string) string {
	rel = Normalize(rel)
	switch {
	case rel == "@" || rel == "":
		return z.zone
	case rel == z.zone || strings.HasSuffix(rel, "."+z.zone):
		return rel // a plugin that answers absolute names
	}
	return rel + "." + z.zone
}

// rel is name relative to the zone, as the plugins take it.
func (z *zoneView) rel(name string) string {
	if name == z.zone {
		return "@"
	}
	return strings.TrimSuffix(name, "."+z.zone)
}

// ownedName maps an ownership record's name back to the name it marks.
func ownedName(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, "_berth-wildcard."); ok {
		return "*." + rest, true
	}
	return strings.CutPrefix(name, "_berth.")
}

// ownership is the TXT value that marks a name as this Berth's.
func ownership(owner, resource string) string {
	return "heritage=berth,berth/owner=" + owner + ",berth/resource=" + resource
}

// ownedBy reports whether an ownership TXT value names owner.
func ownedBy(value, owner string) bool {
	value = strings.Trim(value, `"`)
	var heritage, mine bool
	for _, kv := range strings.Split(value, ",") {
		switch kv {
		case "heritage=berth":
			heritage = true
		case "berth/owner=" + owner:
			mine = true
		}
	}
	return heritage && mine
}

// managedTypes are the types Berth writes at a name it keeps.
var managedTypes = []string{"CNAME", "A", "AAAA"}

// ensure makes name hold w, if the name is Berth's or free.
func (s *Service) ensure(ctx context.Context, dns pluginclient.DNSProvider, set Settings, z *zoneView, name string, w want) error {
	var present []sdk.Record
	for _, r := range z.byName[name] {
		if slices.Contains(managedTypes, r.Type) {
			present = append(present, r)
		}
	}
	zone := set.ZoneName()
	if !z.owned[name] {
		if len(present) > 0 {
			return fmt.Errorf("%s already has a %s record that is not Berth's (no ownership record at %s); Berth leaves it alone", name, present[0].Type, ownerName(name))
		}
		// Mark the name first: a pass cut short after this still knows
		// the name is Berth's, never the reverse.
		mark := sdk.Record{Name: z.rel(ownerName(name)), Type: "TXT", Value: ownership(set.owner(), w.resource), TTL: set.ttl()}
		if _, err := dns.SetRecords(ctx, sdk.RecordsChange{Zone: zone, Records: []sdk.Record{mark}}); err != nil {
			return fmt.Errorf("marking %s as Berth's: %w", name, err)
		}
	}
	byType := map[string][]sdk.Record{}
	for _, r := range present {
		byType[r.Type] = append(byType[r.Type], r)
	}
	wanted := map[string][]string{}
	for _, v := range w.values {
		typ := w.typ
		if typ == "A" && strings.Contains(v, ":") {
			typ = "AAAA"
		}
		wanted[typ] = append(wanted[typ], v)
	}
	for _, typ := range managedTypes {
		have, want := byType[typ], wanted[typ]
		switch {
		case len(want) == 0 && len(have) > 0:
			if _, err := dns.DeleteRecords(ctx, sdk.RecordsChange{Zone: zone, Records: have}); err != nil {
				return fmt.Errorf("deleting %s's %s records: %w", name, typ, err)
			}
		case len(want) > 0 && !sameRecords(have, want, set.ttl()):
			recs := make([]sdk.Record, len(want))
			for i, v := range want {
				recs[i] = sdk.Record{Name: z.rel(name), Type: typ, Value: recordValue(typ, v), TTL: set.ttl()}
			}
			if _, err := dns.SetRecords(ctx, sdk.RecordsChange{Zone: zone, Records: recs}); err != nil {
				return fmt.Errorf("writing %s's %s record: %w", name, typ, err)
			}
		}
	}
	return nil
}

// remove deletes what Berth wrote at name, then its ownership record.
func (s *Service) remove(ctx context.Context, dns pluginclient.DNSProvider, set Settings, z *zoneView, name string) error {
	zone := set.ZoneName()
	var recs []sdk.Record
	for _, r := range z.byName[name] {
		if slices.Contains(managedTypes, r.Type) {
			recs = append(recs, r)
		}
	}
	if len(recs) > 0 {
		if _, err := dns.DeleteRecords(ctx, sdk.RecordsChange{Zone: zone, Records: recs}); err != nil {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
	}
	var marks []sdk.Record
	for _, r := range z.byName[ownerName(name)] {
		if r.Type == "TXT" && ownedBy(r.Value, set.owner()) {
			marks = append(marks, r)
		}
	}
	if _, err := dns.DeleteRecords(ctx, sdk.RecordsChange{Zone: zone, Records: marks}); err != nil {
		return fmt.Errorf("deleting %s's ownership record: %w", name, err)
	}
	return nil
}

// recordValue is v as a record of typ carries it: names fully qualified.
func recordValue(typ, v string) string {
	if typ == "CNAME" {
		return v + "."
	}
	return v
}

// sameRecords reports whether have holds exactly the values in want, at
// ttl.
func sameRecords(have []sdk.Record, want []string, ttl time.Duration) bool {
	if len(have) != len(want) {
		return false
	}
	got := make([]string, len(have))
	for i, r := range have {
		if r.TTL != 0 && r.TTL != ttl {
			return false
		}
		got[i] = Normalize(r.Value)
	}
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	return slices.Equal(got, w)
}

// passState is the outcome of the last pass, for the events of its
// transitions. One record, "pass".
type passState struct {
	Failing bool      `json:"failing"`
	Since   time.Time `json:"since"`
	Error   string    `json:"error,omitempty"`
}

var passStates = store.NewTable[passState]("dns_pass")

// syncRefresh is how stale a synced name's last_synced_at may grow before
// a pass writes it again: passes that change nothing write nothing, so a
// fleet of hostnames costs the store nothing every 30 s.
const syncRefresh = 5 * time.Minute

// record writes each cluster's and binding's outcome, removes bindings of
// deleted clusters, and emits dns.sync_failed or dns.recovered when the
// pass's outcome changed. wants is nil when managed DNS is off.
func (s *Service) record(p pass, wants map[string]want, outcome map[string]error, passErr error, check map[string]resolution) error {
	now := s.now()
	return s.db.Update(func(tx *store.Tx) error {
		for _, b := range p.bindings {
			cur, err := bindings.Get(tx, b.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue // unbound during the pass
			}
			if err != nil {
				return err
			}
			if !slices.Contains(p.live, cur.Cluster) {
				if err := bindings.Delete(tx, cur.ID); err != nil {
					return err
				}
				continue
			}
			next := *cur
			next.DNSScope = scope(p.set, cur.Hostname)
			if next.DNSScope == SelfManaged {
				next.DNSStatus, next.DNSMessage = NotManaged, ""
			} else {
				applyOutcome(&next.DNSStatus, &next.DNSMessage, &next.DNSLastSyncedAt, &next.DNSLastError, &next.DNSLastErrorAt, outcome[cur.Hostname], now)
			}
			if r, ok := check[cur.ID]; ok {
				next.Status, next.LastError = r.status, r.message
			}
			if changed(cur.DNSStatus, next.DNSStatus, cur.DNSMessage, next.DNSMessage, cur.Status, next.Status, cur.LastError, next.LastError) ||
				moved(cur.DNSLastSyncedAt, next.DNSLastSyncedAt) || cur.DNSScope != next.DNSScope {
				next.UpdatedAt = now
				if err := bindings.Put(tx, cur.ID, &next); err != nil {
					return err
				}
			}
		}
		if err := s.recordClusters(tx, p, outcome, now); err != nil {
			return err
		}
		if wants == nil {
			return nil
		}
		return s.recordPass(tx, passErr, now)
	})
}

// recordClusters writes each live cluster's own record's outcome and
// forgets deleted clusters'.
func (s *Service) recordClusters(tx *store.Tx, p pass, outcome map[string]error, now time.Time) error {
	var gone []string
	err := clusterStates.Scan(tx, store.ScanOptions{}, func(name string, _ *ClusterDNS) (bool, error) {
		if !slices.Contains(p.live, name) || !p.set.Enabled() {
			gone = append(gone, name)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, name := range gone {
		if err := clusterStates.Delete(tx, name); err != nil {
			return err
		}
	}
	if !p.set.Enabled() {
		return nil
	}
	for _, c := range p.live {
		cur, err := clusterStates.Get(tx, c)
		if errors.Is(err, store.ErrNotFound) {
			cur, err = &ClusterDNS{Cluster: c, Status: Pending}, nil
		}
		if err != nil {
			return err
		}
		next := *cur
		applyOutcome(&next.Status, &next.Message, &next.LastSyncedAt, &next.LastError, &next.LastErrorAt, outcome[p.set.Target(c)], now)
		if changed(cur.Status, next.Status, cur.Message, next.Message) || moved(cur.LastSyncedAt, next.LastSyncedAt) || next.UpdatedAt.IsZero() {
			next.UpdatedAt = now
			if err := clusterStates.Put(tx, c, &next); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyOutcome sets a name's DNS status from its pass's outcome.
func applyOutcome(status, message *string, syncedAt *(*time.Time), lastErr *string, errAt *(*time.Time), err error, now time.Time) {
	if err != nil {
		*status, *message, *lastErr = Error, firstLine(err), firstLine(err)
		t := now
		*errAt = &t
		return
	}
	was := *status
	*status, *message = Synced, "the record is in the zone"
	if was != Synced || *syncedAt == nil || now.Sub(**syncedAt) >= syncRefresh {
		t := now
		*syncedAt = &t
	}
}

// recordPass emits the transitions of the whole pass: dns.sync_failed when
// it starts failing, dns.recovered when it passes again.
func (s *Service) recordPass(tx *store.Tx, passErr error, now time.Time) error {
	prev, err := passStates.Get(tx, "pass")
	if errors.Is(err, store.ErrNotFound) {
		prev, err = &passState{}, nil
	}
	if err != nil {
		return err
	}
	failing := passErr != nil
	if failing == prev.Failing {
		return nil
	}
	next := passState{Failing: failing, Since: now}
	if failing {
		next.Error = firstLine(passErr)
		if err := events.Emit(tx, events.Event{Type: events.DNSSyncFailed, Time: now,
			Summary: "Berth could not bring the DNS zone in line: " + next.Error,
			Data:    map[string]string{"error": next.Error}}); err != nil {
			return err
		}
	} else {
		if err := events.Emit(tx, events.Event{Type: events.DNSRecovered, Time: now,
			Summary: "The DNS zone is in line with Berth again.",
			Data:    map[string]string{"down_for": now.Sub(prev.Since).Round(time.Second).String()}}); err != nil {
			return err
		}
	}
	return passStates.Put(tx, "pass", &next)
}

// changed reports whether any (before, after) pair differs.
func changed(pairs ...string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] != pairs[i+1] {
			return true
		}
	}
	return false
}

// moved reports whether a time field changed.
func moved(before, after *time.Time) bool {
	return (before == nil) != (after == nil) || (before != nil && !before.Equal(*after))
}

// firstLine is err's text cut to one line of at most 300 characters, for
// status fields.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

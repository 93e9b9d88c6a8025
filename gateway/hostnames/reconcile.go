package hostnames

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	fleet    fleet
	live     []string // the fleet's names
	bindings []Binding
	retired  []retired
}

// conflict is a name's error that is nobody's failure to fix in Berth: a
// record or ownership mark Berth does not own is in the way, or another
// cluster's name now holds a hostname. Its text is Berth's own, shown to
// members as it is.
type conflict struct{ msg string }

func (c *conflict) Error() string { return c.msg }

func conflictf(format string, args ...any) error {
	return &conflict{fmt.Sprintf(format, args...)}
}

// pluginError is a call to the DNS plugin that failed. Members see what
// failed (public), never the plugin's text, which may name the server,
// echo a key or carry an account's details; administrators see the whole
// in the log and the dns.sync_failed event.
type pluginError struct {
	public string
	err    error
}

func (e *pluginError) Error() string { return e.public + ": " + e.err.Error() }
func (e *pluginError) Unwrap() error { return e.err }

func pluginErrorf(err error, format string, args ...any) error {
	return &pluginError{public: fmt.Sprintf(format, args...), err: err}
}

// memberText is err as members see it in status fields: a plugin's
// failure by its kind only.
func memberText(err error) string {
	var pe *pluginError
	if !errors.As(err, &pe) {
		return firstLine(err)
	}
	why := "the DNS plugin failed"
	switch {
	case errors.Is(err, sdk.ErrRetryable):
		why = "the DNS server is unavailable; Berth tries again"
	case errors.Is(err, sdk.ErrNotFound):
		why = "the DNS plugin does not find the zone"
	}
	return cut(pe.public + ": " + why + " (administrators see the plugin's error in Berth's log and the dns.sync_failed event)")
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
		return s.record(p, nil, nil, nil, nil, s.resolveAll(ctx, p))
	}
	// The records of settings no longer in force go first: with the
	// owner id changed in the same zone, they would be in the way.
	passErr := s.retire(ctx, p)
	wants, refused := s.wants(p)
	outcome := map[string]error{}
	dns, err := s.opts.Provider(p.set.Plugin)
	var zone []sdk.Record
	if err == nil {
		zone, err = dns.GetRecords(ctx, p.set.ZoneName())
	}
	if err != nil {
		err = pluginErrorf(err, "reading zone %s through plugin %s", p.set.ZoneName(), p.set.Plugin)
		for name := range wants {
			outcome[name] = err
		}
		passErr = errors.Join(err, passErr)
		return errors.Join(passErr, s.record(p, wants, refused, outcome, passErr, nil))
	}
	z := newZoneView(p.set.owner(), p.set.ZoneName(), zone)
	var failed []string
	var first error
	fail := func(name string, err error) {
		failed = append(failed, name)
		if first == nil {
			first = err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(wants)) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		outcome[name] = s.ensure(ctx, dns, p.set, z, name, wants[name])
		var c *conflict
		switch {
		case outcome[name] == nil:
		case errors.As(outcome[name], &c) && strings.HasPrefix(wants[name].resource, "binding/"):
			// A member's hostname someone else holds in the zone: that
			// hostname's error, not the fleet's.
		default:
			fail(name, outcome[name])
		}
	}
	// Names Berth owns that nobody wants any more: a deleted cluster's,
	// an unbound hostname's, or one the base domain no longer holds.
	for _, name := range slices.Sorted(maps.Keys(z.owned)) {
		if _, ok := wants[name]; ok {
			continue
		}
		if err := s.remove(ctx, dns, p.set.ZoneName(), p.set.owner(), z, name); err != nil {
			fail(name, err)
		}
	}
	if len(failed) > 0 {
		passErr = errors.Join(fmt.Errorf("%d of the zone's names are not in sync (%s); the first: %w", len(failed), strings.Join(failed[:min(len(failed), 5)], ", "), first), passErr)
	}
	checks := s.resolveAll(ctx, p)
	return errors.Join(passErr, s.record(p, wants, refused, outcome, passErr, checks))
}

// read loads the settings, the live clusters and every binding.
func (s *Service) read() (pass, error) {
	var p pass
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		if p.set, err = readSettings(tx); err != nil {
			return err
		}
		if p.fleet, err = readFleet(tx); err != nil {
			return err
		}
		p.live = p.fleet.names()
		if p.retired, err = readRetired(tx); err != nil {
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
// each platform-managed hostname of a live cluster pointing at it. Bound
// hostnames that a cluster's own name (or the edge's) has come to hold
// since they were bound — a cluster created later under a name a
// hostname is or is under — are refused, by binding id: not written.
func (s *Service) wants(p pass) (map[string]want, map[string]error) {
	out, refused := map[string]want{}, map[string]error{}
	for _, c := range p.live {
		w := want{resource: "cluster/" + c, typ: "CNAME", values: []string{p.set.TargetHostname}}
		if len(p.set.TargetAddresses) > 0 {
			w = want{resource: "cluster/" + c, typ: "A", values: p.set.TargetAddresses}
		}
		out[p.set.Target(c)] = w
	}
	for _, b := range p.bindings {
		if !p.fleet.holds(&b) {
			continue
		}
		if err := checkNotTaken(p.set, s.opts.Reserved, p.live, b.Cluster, b.Hostname); err != nil {
			refused[b.ID] = conflictf("Berth no longer writes it: %s", strings.TrimSuffix(firstLine(err), "."))
			continue
		}
		if scope(p.set, b.Hostname) != PlatformManaged {
			continue
		}
		if _, taken := out[b.Hostname]; taken {
			continue // a cluster's own name (refused above; kept safe here)
		}
		out[b.Hostname] = want{resource: "binding/" + b.ID, typ: "CNAME", values: []string{p.set.Target(b.Cluster)}}
	}
	return out, refused
}

// zoneView is the zone as read at the start of a pass.
type zoneView struct {
	zone   string // without the final dot
	byName map[string][]sdk.Record
	// owned are the names whose ownership record is this Berth's;
	// foreign those with a TXT record at their ownership record's name
	// that is not (another Berth's, or anyone's): Berth writes neither
	// its mark there (that would replace theirs) nor the name.
	owned, foreign map[string]bool
	// marks are this Berth's ownership values, by the name they mark.
	marks map[string]string
}

func newZoneView(owner, zone string, recs []sdk.Record) *zoneView {
	z := &zoneView{zone: strings.TrimSuffix(zone, "."), byName: map[string][]sdk.Record{}, owned: map[string]bool{}, foreign: map[string]bool{}, marks: map[string]string{}}
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
			switch {
			case r.Type != "TXT":
			case ownedBy(r.Value, owner):
				z.owned[target], z.marks[target] = true, strings.Trim(r.Value, `"`)
			default:
				z.foreign[target] = true
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
			return conflictf("%s already has a %s record that is not Berth's (no ownership record at %s); Berth leaves it alone", name, present[0].Type, ownerName(name))
		}
		if z.foreign[name] {
			return conflictf("%s has an ownership record that is not this Berth's at %s (another Berth's, or someone's TXT); Berth leaves it alone", name, ownerName(name))
		}
	}
	// Mark the name first: a pass cut short after this still knows the
	// name is Berth's, never the reverse. A name Berth owns already is
	// marked again when what it is for changed (a hostname's name that a
	// cluster created since has as its own).
	if mark := ownership(set.owner(), w.resource); z.marks[name] != mark {
		rec := sdk.Record{Name: z.rel(ownerName(name)), Type: "TXT", Value: mark, TTL: set.ttl()}
		if _, err := dns.SetRecords(ctx, sdk.RecordsChange{Zone: zone, Records: []sdk.Record{rec}}); err != nil {
			return pluginErrorf(err, "marking %s as Berth's", name)
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
				return pluginErrorf(err, "deleting %s's %s records", name, typ)
			}
		case len(want) > 0 && !sameRecords(have, want, set.ttl()):
			recs := make([]sdk.Record, len(want))
			for i, v := range want {
				recs[i] = sdk.Record{Name: z.rel(name), Type: typ, Value: recordValue(typ, v), TTL: set.ttl()}
			}
			if _, err := dns.SetRecords(ctx, sdk.RecordsChange{Zone: zone, Records: recs}); err != nil {
				return pluginErrorf(err, "writing %s's %s record", name, typ)
			}
		}
	}
	return nil
}

// remove deletes what Berth (as owner) wrote at name in zone, then its
// ownership record.
func (s *Service) remove(ctx context.Context, dns pluginclient.DNSProvider, zone, owner string, z *zoneView, name string) error {
	var recs []sdk.Record
	for _, r := range z.byName[name] {
		if slices.Contains(managedTypes, r.Type) {
			recs = append(recs, r)
		}
	}
	if len(recs) > 0 {
		if _, err := dns.DeleteRecords(ctx, sdk.RecordsChange{Zone: zone, Records: recs}); err != nil {
			return pluginErrorf(err, "deleting %s", name)
		}
	}
	var marks []sdk.Record
	for _, r := range z.byName[ownerName(name)] {
		if r.Type == "TXT" && ownedBy(r.Value, owner) {
			marks = append(marks, r)
		}
	}
	if _, err := dns.DeleteRecords(ctx, sdk.RecordsChange{Zone: zone, Records: marks}); err != nil {
		return pluginErrorf(err, "deleting %s's ownership record", name)
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

// flapWindow is how long after a told recovery a new failure waits to
// be told (unless it lasts that long): a flapping zone sends at most two
// events a window, not two a pass.
const flapWindow = 15 * time.Minute

// passState is the outcome of the last pass, for the events of its
// transitions. One record, "pass".
type passState struct {
	Failing bool      `json:"failing"`
	Since   time.Time `json:"since"`
	Error   string    `json:"error,omitempty"`
	// Told: this failure was sent as dns.sync_failed. Recovered: when
	// the last told failure ended (dns.recovered).
	Told      bool      `json:"told,omitempty"`
	Recovered time.Time `json:"recovered,omitzero"`
}

var passStates = store.NewTable[passState]("dns_pass")

// syncRefresh is how stale a synced name's last_synced_at may grow before
// a pass writes it again: passes that change nothing write nothing, so a
// fleet of hostnames costs the store nothing every 30 s.
const syncRefresh = 5 * time.Minute

// record writes each cluster's and binding's outcome (refused: by
// binding id, the bindings not written), removes bindings of deleted
// clusters, and emits dns.sync_failed or dns.recovered when the pass's
// outcome changed. wants is nil when managed DNS is off.
func (s *Service) record(p pass, wants map[string]want, refused, outcome map[string]error, passErr error, check map[string]resolution) error {
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
			if !p.fleet.holds(cur) {
				if err := bindings.Delete(tx, cur.ID); err != nil {
					return err
				}
				continue
			}
			next := *cur
			next.DNSScope = scope(p.set, cur.Hostname)
			switch {
			case refused[cur.ID] != nil:
				applyOutcome(&next.DNSStatus, &next.DNSMessage, &next.DNSLastSyncedAt, &next.DNSLastError, &next.DNSLastErrorAt, refused[cur.ID], now)
			case next.DNSScope == SelfManaged:
				next.DNSStatus, next.DNSMessage = NotManaged, ""
			default:
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
		*status, *message, *lastErr = Error, memberText(err), memberText(err)
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
// it starts failing, dns.recovered when it passes again. A failure within
// flapWindow of the last recovery is told only once it has lasted
// flapWindow (and its end only if it was told): a flapping zone is not a
// flood of events.
func (s *Service) recordPass(tx *store.Tx, passErr error, now time.Time) error {
	prev, err := passStates.Get(tx, "pass")
	if errors.Is(err, store.ErrNotFound) {
		prev, err = &passState{}, nil
	}
	if err != nil {
		return err
	}
	next := *prev
	switch {
	case passErr != nil && !prev.Failing:
		next = passState{Failing: true, Since: now, Recovered: prev.Recovered}
	case passErr == nil && prev.Failing:
		next = passState{Since: now, Recovered: prev.Recovered}
		if prev.Told {
			next.Recovered = now
			if err := events.Emit(tx, events.Event{Type: events.DNSRecovered, Time: now,
				Summary: "The DNS zone is in line with Berth again.",
				Data:    map[string]string{"down_for": now.Sub(prev.Since).Round(time.Second).String()}}); err != nil {
				return err
			}
		}
	}
	if next.Failing && !next.Told && (next.Recovered.IsZero() || now.Sub(next.Recovered) >= flapWindow || now.Sub(next.Since) >= flapWindow) {
		next.Told, next.Error = true, firstLine(passErr)
		if err := events.Emit(tx, events.Event{Type: events.DNSSyncFailed, Time: now,
			Summary: "Berth could not bring the DNS zone in line: " + next.Error,
			Data:    map[string]string{"error": next.Error}}); err != nil {
			return err
		}
	}
	if next == *prev {
		return nil
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

// firstLine is err's text cut to one line of at most 300 bytes (and
// whole characters), for status fields and events.
func firstLine(err error) string { return cut(err.Error()) }

// cut is msg's first line, at most 300 bytes of whole characters.
func cut(msg string) string {
	msg, _, _ = strings.Cut(msg, "\n")
	if len(msg) <= 300 {
		return msg
	}
	i := 300
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return msg[:i] + "…"
}

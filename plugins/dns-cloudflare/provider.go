package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/berthgw/berth/sdk"
)

// provider implements sdk.DNSProvider on Cloudflare.
type provider struct {
	rt atomic.Pointer[runtime]
}

// maxComment is the longest record comment Cloudflare takes on every plan.
const maxComment = 100

// commentFor is the comment of the records the plugin creates: it marks
// them as Berth's and names the call that made them.
func commentFor(key string) string {
	c := "managed by Berth"
	if key = peerText([]byte(key), maxComment); key != "" {
		c += " (" + key + ")"
	}
	if len(c) > maxComment {
		c = strings.TrimSuffix(peerText([]byte(c), maxComment-len("…")), "…") + "…"
	}
	return c
}

// call is what every method starts with: the runtime, the zone in
// Cloudflare's form, and the request's records checked by check. Nothing
// is sent before all of them pass.
func (p *provider) call(zone string, recs []sdk.Record, check func(sdk.Record, string) (want, error)) (*runtime, string, []want, error) {
	rt, err := p.current()
	if err != nil {
		return nil, "", nil, err
	}
	z, err := normalizeZone(zone)
	if err != nil {
		return nil, "", nil, err
	}
	ws := make([]want, 0, len(recs))
	for i, r := range recs {
		w, err := check(r, z)
		if err != nil {
			return nil, "", nil, fmt.Errorf("zone %s: record %d: %w", z, i+1, err)
		}
		ws = append(ws, w)
	}
	return rt, z, ws, nil
}

// withZone runs fn with the id of zone, holding the zone's lock when
// write is true. When the id came from the cache and Cloudflare no longer
// knows it (the zone was deleted and added again), it looks the zone up
// again and runs fn once more; every fn converges, so a second run after a
// partial first one is harmless.
func (rt *runtime) withZone(ctx context.Context, zone string, write bool, fn func(id string) error) error {
	for try := 0; ; try++ {
		id, cached, err := rt.api.zoneID(ctx, zone)
		if err != nil {
			return err
		}
		if write {
			l := rt.api.lock(id)
			l.Lock()
			err = fn(id)
			l.Unlock()
		} else {
			err = fn(id)
		}
		if err != nil && cached && try == 0 && zoneGone(err) {
			rt.api.forget(zone)
			continue
		}
		return err
	}
}

// groupKey is a record set: one name, one type.
type groupKey struct{ fqdn, typ string }

// groups keeps the record sets read during one call, so that records of
// one set in a request are listed once.
type groups map[groupKey][]cfRecord

// get returns the records of w's set, listing them on first use.
func (g groups) get(ctx context.Context, rt *runtime, zone, id string, w want) ([]cfRecord, error) {
	k := groupKey{w.fqdn, w.Type}
	if recs, ok := g[k]; ok {
		return recs, nil
	}
	recs, err := rt.api.listRecords(ctx, zone, id, w.fqdn, w.Type)
	if err != nil {
		return nil, err
	}
	g[k] = recs
	return recs, nil
}

// findSame returns the record of recs with w's data.
func findSame(recs []cfRecord, zone string, w want) (cfRecord, bool) {
	for _, c := range recs {
		if sameData(fromCloudflare(c, zone), w.Record) {
			return c, true
		}
	}
	return cfRecord{}, false
}

// GetRecords returns every record of the zone, following Cloudflare's
// pages.
func (p *provider) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	rt, z, _, err := p.call(zone, nil, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	var out []sdk.Record
	err = rt.withZone(ctx, z, false, func(id string) error {
		recs, err := rt.api.listRecords(ctx, z, id, "", "")
		if err != nil {
			return err
		}
		out = make([]sdk.Record, 0, len(recs))
		for _, c := range recs {
			out = append(out, fromCloudflare(c, z))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z, err)
	}
	return out, nil
}

// AppendRecords adds the records that the zone does not hold yet and
// returns every record asked for as the zone now holds it. A record whose
// name, type, value (and priority and weight) exist already is not added
// again, whatever its TTL: that makes a retried call, with the same
// idempotency key or none, a no-op. Created records carry a comment naming
// Berth and the idempotency key.
func (p *provider) AppendRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	rt, z, ws, err := p.call(req.Zone, req.Records, checkWrite)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	var out []sdk.Record
	err = rt.withZone(ctx, z, true, func(id string) error {
		out = out[:0]
		g := groups{}
		for _, w := range ws {
			recs, err := g.get(ctx, rt, z, id, w)
			if err != nil {
				return err
			}
			if c, ok := findSame(recs, z, w); ok {
				out = append(out, fromCloudflare(c, z))
				continue
			}
			created, err := rt.api.createRecord(ctx, id, toCloudflare(w, rt.proxied, commentFor(req.IdempotencyKey)))
			if errors.Is(err, sdk.ErrAlreadyExists) {
				// Made by someone else since the list: if it is
				// the same record, the append is done.
				delete(g, groupKey{w.fqdn, w.Type})
				recs, lerr := g.get(ctx, rt, z, id, w)
				if lerr != nil {
					return lerr
				}
				if c, ok := findSame(recs, z, w); ok {
					out = append(out, fromCloudflare(c, z))
					continue
				}
			}
			if err != nil {
				return err
			}
			g[groupKey{w.fqdn, w.Type}] = append(recs, created)
			out = append(out, fromCloudflare(created, z))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z, err)
	}
	return out, nil
}

// needsUpdate reports whether existing record c, which holds w's data,
// differs from w in what Cloudflare stores beside the data: TTL, and
// proxying for the types that can be proxied.
func needsUpdate(c cfRecord, w want, proxied bool) bool {
	if c.TTL != cfTTL(w.TTL) {
		return true
	}
	return proxiable[w.Type] && (c.Proxied == nil || *c.Proxied != proxied)
}

// SetRecords makes the given records the only ones of their (name, type)
// sets, with as few requests as it can: a record that is already as asked
// is left alone, one that differs only in TTL or proxying is updated, the
// other existing records are updated in place to the remaining values,
// what is still missing is created, and what is left over is deleted.
func (p *provider) SetRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	rt, z, ws, err := p.call(req.Zone, req.Records, checkWrite)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()

	// The record sets, in request order, without repeated records.
	var order []groupKey
	sets := map[groupKey][]want{}
	for _, w := range ws {
		k := groupKey{w.fqdn, w.Type}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		dup := false
		for _, o := range sets[k] {
			dup = dup || sameData(o.Record, w.Record)
		}
		if !dup {
			sets[k] = append(sets[k], w)
		}
	}

	var out []sdk.Record
	err = rt.withZone(ctx, z, true, func(id string) error {
		out = out[:0]
		for _, k := range order {
			recs, err := rt.setOne(ctx, z, id, sets[k], commentFor(req.IdempotencyKey))
			if err != nil {
				return err
			}
			out = append(out, recs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z, err)
	}
	return out, nil
}

// setOne converges one record set to desired and returns it.
func (rt *runtime) setOne(ctx context.Context, zone, id string, desired []want, comment string) ([]sdk.Record, error) {
	w0 := desired[0]
	existing, err := rt.api.listRecords(ctx, zone, id, w0.fqdn, w0.Type)
	if err != nil {
		return nil, err
	}
	result := make([]*cfRecord, len(desired))
	used := make([]bool, len(existing))
	update := func(i, j int) error {
		c, err := rt.api.updateRecord(ctx, id, existing[j].ID, toCloudflare(desired[i], rt.proxied, ""))
		if err != nil {
			return err
		}
		result[i] = &c
		return nil
	}
	// Records already holding a wanted value stay, updated if their TTL
	// or proxying differs.
	for i, w := range desired {
		for j, c := range existing {
			if used[j] || !sameData(fromCloudflare(c, zone), w.Record) {
				continue
			}
			used[j] = true
			if needsUpdate(c, w, rt.proxied) {
				if err := update(i, j); err != nil {
					return nil, err
				}
			} else {
				result[i] = &existing[j]
			}
			break
		}
	}
	// The other existing records take the remaining values in place.
	j := 0
	for i := range desired {
		if result[i] != nil {
			continue
		}
		for j < len(existing) && used[j] {
			j++
		}
		if j == len(existing) {
			break
		}
		used[j] = true
		if err := update(i, j); err != nil {
			return nil, err
		}
	}
	// What is still missing is created.
	for i, w := range desired {
		if result[i] != nil {
			continue
		}
		c, err := rt.api.createRecord(ctx, id, toCloudflare(w, rt.proxied, comment))
		if err != nil {
			return nil, err
		}
		result[i] = &c
	}
	// What is left over goes.
	for j, c := range existing {
		if used[j] {
			continue
		}
		if err := rt.api.deleteRecord(ctx, id, c); err != nil && !recordGone(err) {
			return nil, err
		}
	}
	out := make([]sdk.Record, len(result))
	for i, c := range result {
		out[i] = fromCloudflare(*c, zone)
	}
	return out, nil
}

// DeleteRecords deletes the records that match the request's (same name
// and type; same value, TTL and priority where given) and returns them.
// Records that do not exist, or that vanish meanwhile, are ignored.
func (p *provider) DeleteRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	rt, z, ws, err := p.call(req.Zone, req.Records, checkMatch)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	var deleted []sdk.Record
	err = rt.withZone(ctx, z, true, func(id string) error {
		deleted = deleted[:0]
		g := groups{}
		gone := map[string]bool{}
		for _, w := range ws {
			recs, err := g.get(ctx, rt, z, id, w)
			if err != nil {
				return err
			}
			for _, c := range recs {
				r := fromCloudflare(c, z)
				if gone[c.ID] || !matches(r, w) {
					continue
				}
				gone[c.ID] = true
				if err := rt.api.deleteRecord(ctx, id, c); err != nil {
					if recordGone(err) {
						continue
					}
					return err
				}
				deleted = append(deleted, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z, err)
	}
	return deleted, nil
}

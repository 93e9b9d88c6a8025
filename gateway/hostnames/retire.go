package hostnames

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// retired is a zone and owner id that settings no longer in force wrote
// records as: changing the zone (or the base domain to one in another
// zone) or the owner id would otherwise leave those records in the zone
// for good — Berth reads only the zone of the settings in force, and
// knows its records only by their owner id. A pass removes every record
// the owner id marks in the zone, through the plugin of those settings,
// and then forgets them.
type retired struct {
	Plugin string    `json:"plugin"`
	Zone   string    `json:"zone"` // fully qualified
	Owner  string    `json:"owner"`
	Since  time.Time `json:"since"`
}

var retiredTable = store.NewTable[retired]("dns_retired")

func retiredOf(set Settings, now time.Time) retired {
	return retired{Plugin: set.Plugin, Zone: set.ZoneName(), Owner: set.owner(), Since: now}
}

// key is the zone and the owner id: a change of plugin alone (the same
// zone through another plugin instance) retires nothing, as a pass of the
// new settings finds the same records theirs.
func (r retired) key() string { return r.Owner + "@" + r.Zone }

// retireOld notes old's records for removal when in writes elsewhere or
// as another owner (or turns managed DNS off: they are removed once it is
// on again elsewhere), and takes back a retired zone in writes to again.
func retireOld(tx *store.Tx, old, in Settings, now time.Time) error {
	if old.Enabled() {
		r := retiredOf(old, now)
		if !in.Enabled() || r.key() != retiredOf(in, now).key() {
			if err := retiredTable.Put(tx, r.key(), &r); err != nil {
				return err
			}
		}
	}
	if in.Enabled() {
		err := retiredTable.Delete(tx, retiredOf(in, now).key())
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func readRetired(tx *store.Tx) ([]retired, error) {
	var out []retired
	err := retiredTable.Scan(tx, store.ScanOptions{}, func(_ string, r *retired) (bool, error) {
		out = append(out, *r)
		return true, nil
	})
	return out, err
}

// retire removes the records of each retired zone and owner (only those
// the owner id marks, as a pass does), and forgets it once none is left.
// A plugin Berth no longer runs, or a zone it no longer serves, cannot be
// cleaned: that is logged, and forgotten.
func (s *Service) retire(ctx context.Context, p pass) error {
	var errs error
	for _, r := range p.retired {
		var recs []sdk.Record
		dns, err := s.opts.Provider(r.Plugin)
		gone := err != nil
		if err == nil {
			recs, err = dns.GetRecords(ctx, r.Zone)
			gone = errors.Is(err, sdk.ErrNotFound)
		}
		if gone {
			s.opts.Log.Warn("dns: the records of former settings cannot be removed; they stay in their zone", "plugin", r.Plugin, "zone", r.Zone, "owner", r.Owner, "err", err)
			errs = errors.Join(errs, s.forget(r))
			continue
		}
		if err != nil {
			errs = errors.Join(errs, pluginErrorf(err, "reading zone %s of former DNS settings through plugin %s", r.Zone, r.Plugin))
			continue
		}
		z := newZoneView(r.Owner, r.Zone, recs)
		clean := true
		for _, name := range slices.Sorted(maps.Keys(z.owned)) {
			if err := s.remove(ctx, dns, r.Zone, r.Owner, z, name); err != nil {
				errs, clean = errors.Join(errs, err), false
			}
		}
		if clean {
			s.opts.Log.Info("dns: removed the records of former settings", "zone", r.Zone, "owner", r.Owner, "names", len(z.owned))
			errs = errors.Join(errs, s.forget(r))
		}
	}
	return errs
}

// forget drops a retired zone and owner, unless settings made since have
// retired it again (a newer Since).
func (s *Service) forget(r retired) error {
	return s.db.Update(func(tx *store.Tx) error {
		cur, err := retiredTable.Get(tx, r.key())
		if errors.Is(err, store.ErrNotFound) || (err == nil && !cur.Since.Equal(r.Since)) {
			return nil
		}
		if err != nil {
			return err
		}
		return retiredTable.Delete(tx, r.key())
	})
}

package notify

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// Route sends the events it matches to a channel: event types by glob
// ("cluster.*", "*"), a minimum severity, and clusters by glob (none: any
// event, with or without a cluster).
type Route struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Events      []string        `json:"events"`
	MinSeverity events.Severity `json:"min_severity"`
	Clusters    []string        `json:"clusters,omitempty"`
	// Channel is a channel's name.
	Channel string `json:"channel"`
	// Target is the recipient in the channel's terms (an address, a Slack
	// channel id, a chat id); empty: the channel's own default.
	Target    string    `json:"target,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var routes = store.NewTable[Route]("notify_routes",
	store.Index[Route]{Name: "name", Unique: true, Values: func(r *Route) []string { return []string{r.Name} }},
)

// ErrRouteNotFound: no route of that name.
var ErrRouteNotFound = fault.New(fault.NotFound, "route not found")

// maxGlobs bounds a route's patterns.
const maxGlobs = 64

// matches reports whether r sends e.
func (r *Route) matches(e *events.Event) bool {
	if e.Severity.Rank() < r.MinSeverity.Rank() {
		return false
	}
	if !slices.ContainsFunc(r.Events, func(g string) bool { ok, _ := path.Match(g, e.Type); return ok }) {
		return false
	}
	if len(r.Clusters) == 0 {
		return true
	}
	return e.Cluster != "" && slices.ContainsFunc(r.Clusters, func(g string) bool { ok, _ := path.Match(g, e.Cluster); return ok })
}

// RouteInput is a route as POST and PUT read it.
type RouteInput struct {
	Name        string   `json:"name"`
	Events      []string `json:"events"`
	MinSeverity string   `json:"min_severity"`
	Clusters    []string `json:"clusters"`
	Channel     string   `json:"channel"`
	Target      string   `json:"target"`
}

// check validates in and returns the route it describes.
func (in RouteInput) check() (Route, error) {
	r := Route{Name: in.Name, Events: in.Events, Clusters: in.Clusters, Channel: in.Channel, Target: in.Target, MinSeverity: events.Info}
	if !channelName.MatchString(r.Name) {
		return r, fault.New(fault.Invalid, "name must be 1-63 lowercase letters, digits and dashes")
	}
	if len(r.Events) == 0 {
		return r, fault.New(fault.Invalid, "events must name at least one event type or glob (\"*\" for all)")
	}
	if len(r.Events) > maxGlobs || len(r.Clusters) > maxGlobs {
		return r, fault.New(fault.Invalid, "at most %d event and %d cluster patterns", maxGlobs, maxGlobs)
	}
	for _, g := range r.Events {
		if err := checkGlob(g); err != nil {
			return r, fault.New(fault.Invalid, "events: %q %v", g, err)
		}
		if !strings.ContainsAny(g, "*?[") {
			if _, ok := events.Lookup(g); !ok {
				return r, fault.New(fault.Invalid, "events: %q is not an event type (GET /api/v1/notifications/events lists them)", g)
			}
		}
	}
	for _, g := range r.Clusters {
		if err := checkGlob(g); err != nil {
			return r, fault.New(fault.Invalid, "clusters: %q %v", g, err)
		}
	}
	if in.MinSeverity != "" {
		sev, err := events.ParseSeverity(in.MinSeverity)
		if err != nil {
			return r, fault.New(fault.Invalid, "min_severity: %v", err)
		}
		r.MinSeverity = sev
	}
	if r.Channel == "" {
		return r, fault.New(fault.Invalid, "channel is required")
	}
	if len(r.Target) > 512 || strings.ContainsAny(r.Target, "\r\n\x00") {
		return r, fault.New(fault.Invalid, "target must be one line of at most 512 bytes")
	}
	return r, nil
}

func checkGlob(g string) error {
	if g == "" || len(g) > 128 {
		return errors.New("must be 1-128 characters")
	}
	if _, err := path.Match(g, ""); err != nil {
		return errors.New("is not a valid glob")
	}
	return nil
}

// ListRoutes returns every route, by name.
func (s *Service) ListRoutes() ([]Route, error) {
	var out []Route
	err := s.db.View(func(tx *store.Tx) error {
		return routes.Scan(tx, store.ScanOptions{}, func(_ string, r *Route) (bool, error) {
			out = append(out, *r)
			return true, nil
		})
	})
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Route returns the route called name.
func (s *Service) Route(name string) (*Route, error) {
	var r *Route
	err := s.db.View(func(tx *store.Tx) (err error) {
		r, _, err = routes.GetBy(tx, "name", name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrRouteNotFound
	}
	return r, err
}

// SaveRoute creates the route (name == "") or replaces the one called
// name. The channel must exist, and its plugin must accept the target.
func (s *Service) SaveRoute(ctx context.Context, name string, in RouteInput) (*Route, error) {
	if name != "" {
		if in.Name == "" {
			in.Name = name
		}
		if in.Name != name {
			return nil, fault.New(fault.Invalid, "a route cannot be renamed; create a new one")
		}
	}
	r, err := in.check()
	if err != nil {
		return nil, err
	}
	c, err := s.Channel(r.Channel)
	if errors.Is(err, ErrChannelNotFound) {
		return nil, fault.New(fault.Invalid, "channel %q does not exist", r.Channel)
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkTarget(ctx, c, r.Target); err != nil {
		return nil, err
	}
	now := s.now()
	r.CreatedAt, r.UpdatedAt = now, now
	err = s.db.Update(func(tx *store.Tx) error {
		if name == "" {
			r.ID = store.NewID("nrt")
			return routes.Insert(tx, r.ID, &r)
		}
		cur, _, err := routes.GetBy(tx, "name", name)
		if errors.Is(err, store.ErrNotFound) {
			return ErrRouteNotFound
		}
		if err != nil {
			return err
		}
		r.ID, r.CreatedAt = cur.ID, cur.CreatedAt
		return routes.Put(tx, r.ID, &r)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, fault.New(fault.Conflict, "a route called %q exists", r.Name)
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteRoute removes the route called name.
func (s *Service) DeleteRoute(name string) error {
	return s.db.Update(func(tx *store.Tx) error {
		r, _, err := routes.GetBy(tx, "name", name)
		if errors.Is(err, store.ErrNotFound) {
			return ErrRouteNotFound
		}
		if err != nil {
			return err
		}
		return routes.Delete(tx, r.ID)
	})
}

// checkTarget asks c's plugin whether target (with c's settings) is one
// it can deliver to; an empty target checks the channel's own default.
func (s *Service) checkTarget(ctx context.Context, c *Channel, target string) error {
	n, _, _, err := s.notifier(ctx, c.Type, c.Plugin)
	if err != nil {
		return err
	}
	settings, err := s.settings(c)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	err = n.CheckChannel(cctx, sdk.ChannelCheck{Channel: c.Type, Settings: settings, Target: target})
	if err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
		return pluginRefusal(err, "target")
	}
	return nil
}

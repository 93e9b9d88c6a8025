// Package billing sells plans: admin-managed plans, users' orders with
// their state machine (pending → paid | canceled | expired), and the
// entitlement a paid order grants, which sets the user's provisioning
// quota. Payment providers are plugins (the checkout, the customer portal
// and the provider's webhooks arrive with the billing plugin protocol);
// entitlements live in the store, so clusters keep their quota when a
// provider is unreachable.
package billing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// PermAdmin lets a role manage plans and every order.
const PermAdmin = "billing:admin"

// Intervals a plan is sold for.
const (
	Once  = "once"
	Month = "month"
	Year  = "year"
)

// Plan is something a user can buy. Its JSON field names are fixed:
// clients rely on them.
type Plan struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Price    int64  `json:"price"`    // minor units (cents)
	Currency string `json:"currency"` // ISO 4217, lower case, as Stripe writes it
	Interval string `json:"interval"` // once, month or year
	// Entitlements are the limits the plan grants, spelled as the
	// provisioning quotas are: max_clusters (a count), max_cpu and
	// max_memory (Kubernetes quantities, "64", "256Gi").
	Entitlements Entitlements `json:"entitlements"`
	// Archived plans are not sold; they were deleted while someone held
	// them.
	Archived  bool      `json:"archived,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Entitlements are a plan's limits. A limit the plan leaves out (zero or
// empty) is the configured default's (Or): a plan that names only
// max_clusters does not lift the default CPU and memory limits.
type Entitlements struct {
	MaxClusters int    `json:"max_clusters,omitempty"`
	MaxCPU      string `json:"max_cpu,omitempty"`
	MaxMemory   string `json:"max_memory,omitempty"`
}

// Or is e with each limit it leaves out taken from d.
func (e Entitlements) Or(d Entitlements) Entitlements {
	if e.MaxClusters == 0 {
		e.MaxClusters = d.MaxClusters
	}
	if e.MaxCPU == "" {
		e.MaxCPU = d.MaxCPU
	}
	if e.MaxMemory == "" {
		e.MaxMemory = d.MaxMemory
	}
	return e
}

// CPUMillicores is MaxCPU in thousandths of a core (0: no limit).
func (e Entitlements) CPUMillicores() int64 { q := quantity(e.MaxCPU); return q.MilliValue() }

// MemoryBytes is MaxMemory in bytes (0: no limit).
func (e Entitlements) MemoryBytes() int64 { q := quantity(e.MaxMemory); return q.Value() }

func quantity(s string) resource.Quantity {
	if s == "" {
		return resource.Quantity{}
	}
	q, _ := resource.ParseQuantity(s) // checked when the plan was saved
	return q
}

var plans = store.NewTable[Plan]("billing_plans",
	store.Index[Plan]{Name: "name", Unique: true, Values: func(p *Plan) []string {
		if p.Archived {
			return nil // an archived plan's name may be used again
		}
		return []string{strings.ToLower(p.Name)}
	}},
)

// ErrPlanNotFound: no such plan (or not one the caller may see).
var ErrPlanNotFound = fault.New(fault.NotFound, "plan not found")

// currencies are the ISO 4217 codes Stripe accepts that Berth sells in,
// with their minor-unit exponent known to be 2 or 0 (zero-decimal).
var currencies = []string{
	"usd", "eur", "gbp", "chf", "cad", "aud", "nzd", "sek", "nok", "dkk", "pln", "czk", "huf", "ron", "bgn",
	"jpy", "krw", "cny", "hkd", "sgd", "inr", "brl", "mxn", "zar", "ils", "try", "aed", "sar", "thb", "twd", "myr", "php", "idr",
}

// validPlanName reports whether name is 1-63 runes of letters, digits
// (any script), spaces, dots, dashes and underscores, starting with a
// letter or digit: ^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,62}$. A loop rather
// than that regexp, whose compiled Unicode classes held over 1 MiB of every
// gateway's heap from start to exit.
func validPlanName(name string) bool {
	n := 0
	for _, r := range name { // invalid UTF-8 is utf8.RuneError: not a letter
		n++
		switch {
		case n > 63:
			return false
		case unicode.IsLetter(r) || unicode.IsNumber(r):
		case n > 1 && (r == ' ' || r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return n > 0
}

// maxPrice bounds a price (Stripe's own limit is 99 999 999 minor units).
const maxPrice = 99_999_999

// PlanInput is a plan as POST and PUT read it. Price is a JSON number
// that must be a whole number of minor units.
type PlanInput struct {
	Name         string       `json:"name"`
	Price        *float64     `json:"price"`
	Currency     string       `json:"currency"`
	Interval     string       `json:"interval"`
	Entitlements Entitlements `json:"entitlements"`
}

// check validates in and returns the plan it describes.
func (in PlanInput) check() (Plan, error) {
	p := Plan{Name: strings.TrimSpace(in.Name), Currency: in.Currency, Interval: in.Interval, Entitlements: in.Entitlements}
	if !validPlanName(p.Name) {
		return p, fault.New(fault.Invalid, "name must be 1-63 letters, digits, spaces, dots, dashes or underscores")
	}
	if in.Price == nil {
		return p, fault.New(fault.Invalid, "price is required, in minor units (cents)")
	}
	if *in.Price != float64(int64(*in.Price)) || *in.Price < 0 || *in.Price > maxPrice {
		return p, fault.New(fault.Invalid, "price must be a whole number of minor units (cents) from 0 to %d", maxPrice)
	}
	p.Price = int64(*in.Price)
	if !slices.Contains(currencies, p.Currency) {
		return p, fault.New(fault.Invalid, "currency must be a lower-case ISO 4217 code Berth sells in, such as usd or eur")
	}
	if !slices.Contains([]string{Once, Month, Year}, p.Interval) {
		return p, fault.New(fault.Invalid, "interval must be once, month or year")
	}
	e := p.Entitlements
	if e.MaxClusters < 0 || e.MaxClusters > 100_000 {
		return p, fault.New(fault.Invalid, "entitlements.max_clusters must be from 0 to 100000")
	}
	for field, v := range map[string]string{"max_cpu": e.MaxCPU, "max_memory": e.MaxMemory} {
		if v == "" {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() < 0 {
			return p, fault.New(fault.Invalid, "entitlements.%s must be a Kubernetes quantity such as 64 or 256Gi", field)
		}
	}
	return p, nil
}

// Plans returns the plans, by name; archived ones only when all is set.
func (s *Service) Plans(all bool) ([]Plan, error) {
	var out []Plan
	err := s.db.View(func(tx *store.Tx) error {
		return plans.Scan(tx, store.ScanOptions{}, func(_ string, p *Plan) (bool, error) {
			if all || !p.Archived {
				out = append(out, *p)
			}
			return true, nil
		})
	})
	slices.SortFunc(out, func(a, b Plan) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Plan returns the plan with id.
func (s *Service) Plan(id string) (*Plan, error) {
	var p *Plan
	err := s.db.View(func(tx *store.Tx) (err error) { p, err = plans.Get(tx, id); return err })
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrPlanNotFound
	}
	return p, err
}

// SavePlan creates a plan (id == "") or replaces the one with id. A
// change reaches orders placed after it; paid orders keep what they
// bought (an order holds a copy of its plan).
func (s *Service) SavePlan(id string, in PlanInput) (*Plan, error) {
	p, err := in.check()
	if err != nil {
		return nil, err
	}
	now := s.now()
	p.CreatedAt, p.UpdatedAt = now, now
	err = s.db.Update(func(tx *store.Tx) error {
		if id == "" {
			p.ID = store.NewID("plan")
			return plans.Insert(tx, p.ID, &p)
		}
		cur, err := plans.Get(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrPlanNotFound
		}
		if err != nil {
			return err
		}
		if cur.Archived {
			return fault.New(fault.Conflict, "the plan is archived")
		}
		p.ID, p.CreatedAt = cur.ID, cur.CreatedAt
		return plans.Put(tx, p.ID, &p)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, fault.New(fault.Conflict, "a plan called %q exists", p.Name)
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// DeletePlan removes a plan nobody holds; one with subscribers (an active
// entitlement or a pending order) is archived instead: no longer sold,
// still honoured. It reports whether the plan was archived.
func (s *Service) DeletePlan(id string) (archived bool, err error) {
	err = s.db.Update(func(tx *store.Tx) error {
		p, err := plans.Get(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrPlanNotFound
		}
		if err != nil {
			return err
		}
		held, err := planHeld(tx, id, s.now())
		if err != nil {
			return err
		}
		if !held {
			return plans.Delete(tx, id)
		}
		p.Archived, p.UpdatedAt, archived = true, s.now(), true
		return plans.Put(tx, id, p)
	})
	return archived, err
}

// planHeld reports whether someone holds plan id: an entitlement still in
// force, or an order still pending.
func planHeld(tx *store.Tx, id string, now time.Time) (bool, error) {
	ents, err := entitlements.IDsBy(tx, "plan", id)
	if err != nil {
		return false, err
	}
	for _, uid := range ents {
		e, err := entitlements.Get(tx, uid)
		if err != nil {
			return false, err
		}
		if e.inForce(now) {
			return true, nil
		}
	}
	pending, err := orders.IDsBy(tx, "pending_plan", id)
	if err != nil {
		return false, fmt.Errorf("pending orders of plan %s: %w", id, err)
	}
	for _, oid := range pending {
		o, err := orders.Get(tx, oid)
		if err != nil {
			return false, err
		}
		if now.Before(o.ExpiresAt) {
			return true, nil // still payable
		}
	}
	return false, nil
}

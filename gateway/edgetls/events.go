package edgetls

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// maxEventError bounds the error an event carries: an ACME problem can
// run long, and a notification is not a log.
const maxEventError = 512

// emitRenewalFailed reports that obtaining or renewing name's certificate
// failed. A first obtain that fails counts too: the name is served with
// the self-signed stand-in until it succeeds, which clients refuse.
func emitRenewalFailed(tx *store.Tx, at time.Time, name string, renewal bool, msg string) error {
	verb := "obtain"
	if renewal {
		verb = "renew"
	}
	if len(msg) > maxEventError {
		msg = strings.ToValidUTF8(msg[:maxEventError], "") + "…"
	}
	return events.Emit(tx, events.Event{Type: events.CertificateRenewalFailed, Time: at,
		Summary: fmt.Sprintf("Berth could not %s the TLS certificate for %q; it keeps trying.", verb, name),
		Data:    map[string]string{"domain": name, "error": msg}})
}

// Defaults of the expiry check.
const (
	DefaultExpiryWarning       = 14 * 24 * time.Hour
	DefaultExpiryCheckInterval = time.Hour
)

// expiryWarning remembers the NotAfter of the certificate last warned
// about under a key (its source and names), so each certificate is warned
// about once, by one replica, across restarts, and its replacement (a new
// NotAfter) is warned about again if it too comes close.
type expiryWarning struct {
	NotAfter time.Time `json:"not_after"`
}

var expiryWarnings = store.NewTable[expiryWarning]("tls_expiry_warnings")

// watchExpiry runs CheckExpiry now and then every ExpiryCheckInterval. It
// runs on every replica: the store decides which one warns.
func (m *Manager) watchExpiry(ctx context.Context) {
	defer m.wg.Done()
	every := m.cfg.ExpiryCheckInterval
	if every <= 0 {
		every = DefaultExpiryCheckInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := m.CheckExpiry(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("tls certificate expiry check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckExpiry emits certificate.expiring for each certificate Berth serves
// that expires within ExpiryWarning and has not been warned about, and
// returns how many it warned about. The warning is recorded in the
// transaction that emits it, after reading the last one there: two
// replicas checking at once conflict, and the second finds it done.
func (m *Manager) CheckExpiry(ctx context.Context) (int, error) {
	if m == nil || m.db == nil {
		return 0, nil
	}
	window := m.cfg.ExpiryWarning
	if window <= 0 {
		window = DefaultExpiryWarning
	}
	certs, err := m.Certificates(ctx)
	if err != nil {
		return 0, err
	}
	now := m.now().UTC()
	n := 0
	for _, c := range certs {
		if c.NotAfter == nil || c.NotAfter.Sub(now) > window {
			continue
		}
		key := c.Source + ":" + strings.Join(slices.Sorted(slices.Values(c.Names)), ",")
		notAfter := c.NotAfter.UTC()
		warned := false
		err := m.db.Update(func(tx *store.Tx) error {
			warned = false
			if last, err := expiryWarnings.Get(tx, key); err == nil && last.NotAfter.Equal(notAfter) {
				return nil
			}
			if err := expiryWarnings.Put(tx, key, &expiryWarning{NotAfter: notAfter}); err != nil {
				return err
			}
			warned = true
			return emitExpiring(tx, now, c.Names, notAfter)
		})
		if err != nil {
			return n, fmt.Errorf("warn of the expiry of %s: %w", key, err)
		}
		if warned {
			n++
		}
	}
	return n, nil
}

func emitExpiring(tx *store.Tx, now time.Time, names []string, notAfter time.Time) error {
	domain := strings.Join(names, ", ")
	days := max(0, int(notAfter.Sub(now)/(24*time.Hour)))
	summary := fmt.Sprintf("The TLS certificate for %q expires in %d days, at %s.", domain, days, notAfter.Format(time.RFC3339))
	if !now.Before(notAfter) {
		summary = fmt.Sprintf("The TLS certificate for %q expired at %s.", domain, notAfter.Format(time.RFC3339))
	}
	return events.Emit(tx, events.Event{Type: events.CertificateExpiring, Time: now, Summary: summary,
		Data: map[string]string{"domain": domain, "expires_at": notAfter.Format(time.RFC3339), "days_left": fmt.Sprint(days)}})
}

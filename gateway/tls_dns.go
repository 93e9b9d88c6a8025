package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/sdk"
)

// pluginDNS lets certmagic's DNS-01 solver set its TXT records through a
// DNS plugin. The plugin client is looked up on every call, so a plugin
// restart between two challenges is harmless.
type pluginDNS struct {
	plugins *pluginhost.Host
	name    string
}

// idempotencyKey makes a retried challenge step a no-op on the plugin side.
func idempotencyKey(op, zone, name, value string) string {
	sum := sha256.Sum256([]byte(op + "\x00" + zone + "\x00" + name + "\x00" + value))
	return "acme-" + op + "-" + hex.EncodeToString(sum[:12])
}

// AppendTXT implements edgetls.DNSRecords.
func (p pluginDNS) AppendTXT(ctx context.Context, zone, name, value string, ttl time.Duration) error {
	d, err := p.plugins.DNS(p.name)
	if err != nil {
		return fmt.Errorf("dns plugin %s: %w", p.name, err)
	}
	_, err = d.AppendRecords(ctx, sdk.RecordsChange{
		IdempotencyKey: idempotencyKey("append", zone, name, value),
		Zone:           zone,
		Records:        []sdk.Record{{Name: name, Type: "TXT", Value: value, TTL: ttl}},
	})
	if err != nil {
		return fmt.Errorf("dns plugin %s: append TXT %s in %s: %w", p.name, name, zone, err)
	}
	return nil
}

// DeleteTXT implements edgetls.DNSRecords.
func (p pluginDNS) DeleteTXT(ctx context.Context, zone, name, value string) error {
	d, err := p.plugins.DNS(p.name)
	if err != nil {
		return fmt.Errorf("dns plugin %s: %w", p.name, err)
	}
	_, err = d.DeleteRecords(ctx, sdk.RecordsChange{
		IdempotencyKey: idempotencyKey("delete", zone, name, value),
		Zone:           zone,
		Records:        []sdk.Record{{Name: name, Type: "TXT", Value: value}},
	})
	if err != nil {
		return fmt.Errorf("dns plugin %s: delete TXT %s in %s: %w", p.name, name, zone, err)
	}
	return nil
}

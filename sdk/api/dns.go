package api

import (
	"context"
	"time"
)

// DNSProvider manages records in DNS zones. Its methods follow libdns
// (github.com/libdns/libdns), so a DNSProvider plugin can also solve ACME
// DNS-01 challenges for certmagic.
type DNSProvider interface {
	// GetRecords returns every record in the zone; sdk.ErrNotFound for an
	// unknown zone.
	GetRecords(ctx context.Context, zone string) ([]Record, error)
	// AppendRecords adds records and returns those added.
	AppendRecords(ctx context.Context, req RecordsChange) ([]Record, error)
	// SetRecords makes the given records the only ones with their (name,
	// type) and returns them.
	SetRecords(ctx context.Context, req RecordsChange) ([]Record, error)
	// DeleteRecords deletes records that match and returns those deleted.
	// Name and type must match; an empty value, zero TTL or zero priority
	// matches any. Records that do not exist are ignored.
	DeleteRecords(ctx context.Context, req RecordsChange) ([]Record, error)
}

// Record is one DNS resource record.
type Record struct {
	// ID is the provider's id for the record, if it has one.
	ID string
	// Name is relative to the zone; "@" is the apex.
	Name     string
	Type     string
	Value    string
	TTL      time.Duration
	Priority uint
	Weight   uint
}

// RecordsChange is a change to records in one zone.
type RecordsChange struct {
	IdempotencyKey string
	// Zone is the fully qualified zone name, e.g. "example.com.".
	Zone    string
	Records []Record
}

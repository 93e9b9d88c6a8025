package store

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// craftedBackup is a well-formed portable backup (valid checksum and
// count) holding the given entries.
func craftedBackup(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw, err := newBackupWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := bw.write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// RED TEAM: Restore loads any key the file names, not only the store's
// own (storePrefixes: meta/, v1/). A backup carrying an election key
// (leaders/<name>/<anything>, no lease, so it never expires) makes that
// key the oldest candidate forever: no replica ever leads, so the outbox,
// probes, signing-key rotation, break-glass sweep and audit purge never
// run again, silently. Backups leave elections out, so no genuine file
// has such keys: Restore should refuse any key outside storePrefixes (and
// a dump should never have written one).
func TestRedteamRestoreRefusesKeysOutsideTheStore(t *testing.T) {
	db := openStore(t, etcdOptions(t))
	file := craftedBackup(t,
		entry{key: "meta/schema_version", value: []byte("0")},
		entry{key: leadersPrefix + "duties/0", value: []byte("attacker")},
	)
	if err := db.Restore(bytes.NewReader(file)); err != nil {
		return // refused: what we want
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	led := false
	db.Lead(ctx, "duties", func(context.Context) { led = true })
	t.Errorf("restore accepted a key outside the store's prefixes (%q); afterwards this replica led the election: %v", leadersPrefix+"duties/0", led)
}

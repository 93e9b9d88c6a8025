// Command dns-zonefile is an example Berth DNS provider plugin: each zone
// is a file in a directory, "<zone>zone" (example.com. → example.com.zone),
// in a small subset of the RFC 1035 master file format, one record a line:
//
//	<name> <ttl> IN <type> [<priority>] <value>
//
// with TXT values in double quotes and ';' starting a comment. A zone
// exists when its file exists (create an empty file to add one). The files
// are rewritten whole, atomically, on every change. One plugin process
// must own a directory: two would overwrite each other's changes.
//
// Configuration:
//
//	{"dir": "/var/lib/berth/zones"}
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
)

// Config is the plugin's configuration.
type Config struct {
	Dir string `json:"dir" berth:"required,description=Directory holding one <zone>zone file per zone"`
	// DefaultTTL applies to records given without a TTL.
	DefaultTTL int `json:"default_ttl" berth:"min=1,max=604800,default=300,description=TTL in seconds for records without one"`
}

type provider struct {
	mu  sync.Mutex
	cfg Config
}

func (p *provider) configure(_ context.Context, cfg Config, _ sdk.Host) error {
	st, err := os.Stat(cfg.Dir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("field \"dir\": %q is not a directory: %w", cfg.Dir, sdk.ErrInvalidConfig)
	}
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
	return nil
}

// zoneName keeps zone names to what DNS allows, so that a zone can never
// name a file outside the directory.
var zoneName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+$`)

func (p *provider) file(zone string) (string, error) {
	zone = strings.ToLower(zone)
	if !strings.HasSuffix(zone, ".") {
		zone += "."
	}
	if !zoneName.MatchString(zone) {
		return "", fmt.Errorf("zone %q is not a DNS name: %w", zone, sdk.ErrInvalidArgument)
	}
	if p.cfg.Dir == "" {
		return "", fmt.Errorf("not configured: %w", sdk.ErrFailedPrecondition)
	}
	return filepath.Join(p.cfg.Dir, zone+"zone"), nil
}

func (p *provider) load(zone string) (string, []sdk.Record, error) {
	path, err := p.file(zone)
	if err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("zone %q: %w", zone, sdk.ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("read zone %q: %v: %w", zone, err, sdk.ErrRetryable)
	}
	recs, err := parseZone(data)
	if err != nil {
		return "", nil, fmt.Errorf("zone file %s: %w", path, err)
	}
	return path, recs, nil
}

func (p *provider) save(path string, recs []sdk.Record) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".zone-*")
	if err != nil {
		return fmt.Errorf("write zone: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(formatZone(recs)); err != nil {
		tmp.Close()
		return fmt.Errorf("write zone: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write zone: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write zone: %w", err)
	}
	// Rename is atomic: readers see the old zone or the new, never half.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace zone: %w", err)
	}
	return nil
}

func (p *provider) normalize(r sdk.Record) (sdk.Record, error) {
	r.Type = strings.ToUpper(r.Type)
	if strings.ContainsAny(r.Name, " \t\n;\"") || strings.ContainsAny(r.Type, " \t\n;\"") {
		return r, fmt.Errorf("record %q %q: name and type may not contain blanks, quotes or ';': %w", r.Name, r.Type, sdk.ErrInvalidArgument)
	}
	if strings.ContainsAny(r.Value, "\n\r") {
		return r, fmt.Errorf("record %q: value may not contain line breaks: %w", r.Name, sdk.ErrInvalidArgument)
	}
	if r.TTL <= 0 {
		r.TTL = time.Duration(p.cfg.DefaultTTL) * time.Second
	}
	r.TTL = r.TTL.Truncate(time.Second)
	r.ID = recordID(r)
	return r, nil
}

func recordID(r sdk.Record) string {
	sum := sha256.Sum256([]byte(r.Name + "\x00" + r.Type + "\x00" + r.Value))
	return hex.EncodeToString(sum[:8])
}

func (p *provider) GetRecords(_ context.Context, zone string) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, recs, err := p.load(zone)
	return recs, err
}

// change loads a zone, applies fn to its records and saves the result.
func (p *provider) change(req sdk.RecordsChange, fn func(recs, in []sdk.Record) (keep, result []sdk.Record)) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	path, recs, err := p.load(req.Zone)
	if err != nil {
		return nil, err
	}
	in := make([]sdk.Record, len(req.Records))
	for i, r := range req.Records {
		if in[i], err = p.normalize(r); err != nil {
			return nil, err
		}
	}
	keep, result := fn(recs, in)
	if err := p.save(path, keep); err != nil {
		return nil, err
	}
	return result, nil
}

func (p *provider) AppendRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return p.change(req, func(recs, in []sdk.Record) ([]sdk.Record, []sdk.Record) {
		return append(recs, in...), in
	})
}

func (p *provider) SetRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return p.change(req, func(recs, in []sdk.Record) ([]sdk.Record, []sdk.Record) {
		recs = slices.DeleteFunc(recs, func(r sdk.Record) bool {
			return slices.ContainsFunc(in, func(n sdk.Record) bool { return n.Name == r.Name && n.Type == r.Type })
		})
		return append(recs, in...), in
	})
}

func (p *provider) DeleteRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	// Match on the caller's fields before normalize fills in the default
	// TTL: an unset TTL means "any TTL".
	want := req.Records
	return p.change(req, func(recs, _ []sdk.Record) ([]sdk.Record, []sdk.Record) {
		var deleted []sdk.Record
		recs = slices.DeleteFunc(recs, func(r sdk.Record) bool {
			for _, d := range want {
				if d.Name == r.Name && strings.EqualFold(d.Type, r.Type) &&
					(d.Value == "" || d.Value == r.Value) && (d.TTL == 0 || d.TTL == r.TTL) &&
					(d.Priority == 0 || d.Priority == r.Priority) {
					deleted = append(deleted, r)
					return true
				}
			}
			return false
		})
		return recs, deleted
	})
}

// hasPriority lists the types whose data starts with a priority.
var hasPriority = map[string]bool{"MX": true, "SRV": true, "URI": true}

func parseZone(data []byte) ([]sdk.Record, error) {
	var recs []sdk.Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' || text[0] == '$' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 5 || !strings.EqualFold(fields[2], "IN") {
			return nil, fmt.Errorf("line %d: want \"<name> <ttl> IN <type> <value>\"", n)
		}
		ttl, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: ttl %q: %v", n, fields[1], err)
		}
		r := sdk.Record{Name: fields[0], TTL: time.Duration(ttl) * time.Second, Type: strings.ToUpper(fields[3])}
		rest := fields[4:]
		if hasPriority[r.Type] && len(rest) > 1 {
			prio, err := strconv.ParseUint(rest[0], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("line %d: priority %q: %v", n, rest[0], err)
			}
			r.Priority, rest = uint(prio), rest[1:]
		}
		// The value is the rest of the line after the fields before it.
		value := text
		for _, f := range fields[:len(fields)-len(rest)] {
			value = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(value), f))
		}
		if r.Type == "TXT" {
			if value, err = strconv.Unquote(value); err != nil {
				return nil, fmt.Errorf("line %d: TXT value must be one quoted string: %v", n, err)
			}
		}
		r.Value = value
		r.ID = recordID(r)
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

func formatZone(recs []sdk.Record) []byte {
	var b bytes.Buffer
	b.WriteString("; managed by the Berth dns-zonefile plugin; edits are kept, comments are not\n")
	for _, r := range recs {
		value := r.Value
		if r.Type == "TXT" {
			value = strconv.Quote(value)
		}
		if hasPriority[r.Type] {
			value = strconv.FormatUint(uint64(r.Priority), 10) + " " + value
		}
		fmt.Fprintf(&b, "%s %d IN %s %s\n", r.Name, int64(r.TTL/time.Second), r.Type, value)
	}
	return b.Bytes()
}

func options() sdk.Options {
	p := &provider{}
	return sdk.Options{
		Name:    "dns-zonefile",
		Version: "1.0.0",
		Config:  sdk.TypedConfig(p.configure),
		DNS:     p,
	}
}

func main() {
	sdk.Serve(options())
}

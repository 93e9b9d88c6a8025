package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File names in the configuration directory.
const (
	// CredentialsFile holds one entry per server: refresh and access
	// tokens, so it is the user's alone (0600).
	CredentialsFile = "credentials.json"
	// lockFile is what concurrent berth processes lock: never the
	// credentials file itself, which is replaced by rename on every write.
	lockFile = "credentials.lock"
)

// DefaultDir is where credentials are kept: $XDG_CONFIG_HOME/berth, else
// ~/.config/berth.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "berth"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory: set XDG_CONFIG_HOME or HOME: %w", err)
	}
	return filepath.Join(home, ".config", "berth"), nil
}

// Entry is what the store keeps of one server.
type Entry struct {
	// Server is Berth's address, as ParseServer returns it.
	Server   string `json:"server"`
	Username string `json:"username,omitempty"`
	// CAData is the PEM that verifies Server (from --certificate-authority);
	// empty means the system's roots.
	CAData   []byte `json:"certificate_authority_data,omitempty"`
	Insecure bool   `json:"insecure_skip_tls_verify,omitempty"`

	RefreshToken string `json:"refresh_token,omitempty"`
	AccessToken  string `json:"access_token,omitempty"`
	// AccessExpiresAt is the access token's expiry by this machine's
	// clock (the time of the request that got it plus its lifetime), and
	// AccessTTL that lifetime.
	AccessExpiresAt time.Time     `json:"access_expires_at,omitzero"`
	AccessTTL       time.Duration `json:"access_ttl,omitempty"`
	// Ended says why the session is over (refused refresh, logout), so
	// later commands say so rather than "not signed in".
	Ended string `json:"ended,omitempty"`
	// Served are the kubectl processes the current access token was handed
	// to; see Store.Credential.
	Served []Asker `json:"served,omitempty"`
}

// maxServed bounds Entry.Served.
const maxServed = 32

// TLS is the entry's way of verifying its server.
func (e *Entry) TLS() TLS { return TLS{CAData: e.CAData, Insecure: e.Insecure} }

// setTokens records tokens got at start (before the request was sent, so
// the expiry is never later than the server's) and forgets who had the
// old access token.
func (e *Entry) setTokens(t *Tokens, start time.Time) {
	ttl := time.Duration(t.ExpiresIn) * time.Second
	e.RefreshToken, e.AccessToken = t.RefreshToken, t.AccessToken
	e.AccessExpiresAt, e.AccessTTL = start.Add(ttl), ttl
	e.Ended, e.Served = "", nil
}

// clearTokens forgets every token of the entry, saying why.
func (e *Entry) clearTokens(why string) {
	e.RefreshToken, e.AccessToken, e.AccessExpiresAt, e.AccessTTL, e.Served = "", "", time.Time{}, 0, nil
	e.Ended = why
}

// Credentials is the credentials file.
type Credentials struct {
	// Current is the server commands use when given no --server.
	Current string   `json:"current,omitempty"`
	Servers []*Entry `json:"servers"`
}

// Find returns the entry of server, or nil.
func (c *Credentials) Find(server string) *Entry {
	for _, e := range c.Servers {
		if e.Server == server {
			return e
		}
	}
	return nil
}

// Put adds or replaces the entry of e.Server.
func (c *Credentials) Put(e *Entry) {
	for i, old := range c.Servers {
		if old.Server == e.Server {
			c.Servers[i] = e
			return
		}
	}
	c.Servers = append(c.Servers, e)
}

// Remove deletes the entry of server.
func (c *Credentials) Remove(server string) {
	for i, e := range c.Servers {
		if e.Server == server {
			c.Servers = append(c.Servers[:i], c.Servers[i+1:]...)
			break
		}
	}
	if c.Current == server {
		c.Current = ""
	}
}

// Store is the credentials file in a configuration directory. Every read
// and write happens under an exclusive lock on a file beside it, so
// berth processes started at once (kubectl runs `berth credential` for
// each invocation, and a user runs many) see each other's refreshes
// instead of spending the same refresh token twice, which Berth answers by
// ending the session.
type Store struct {
	Dir string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Path is the credentials file's path.
func (s *Store) Path() string { return filepath.Join(s.Dir, CredentialsFile) }

// Update runs fn on the credentials under the lock and writes them back
// if fn returns nil. fn may make network calls: other processes wait.
func (s *Store) Update(fn func(*Credentials) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(c); err != nil {
		// What fn changed before failing may still need keeping (a
		// session found ended): fn says so by returning a *keepError.
		var k *keepError
		if errors.As(err, &k) {
			if werr := s.write(c); werr != nil {
				return errors.Join(k.err, werr)
			}
			return k.err
		}
		return err
	}
	return s.write(c)
}

// View runs fn on the credentials under the lock, writing nothing.
func (s *Store) View(fn func(*Credentials) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := s.read()
	if err != nil {
		return err
	}
	return fn(c)
}

// keepError makes Update write the credentials and still fail with err.
type keepError struct{ err error }

func (k *keepError) Error() string { return k.err.Error() }
func (k *keepError) Unwrap() error { return k.err }

// ensureDir creates the directory (0700) and refuses one that others may
// write to, where the credentials file could be swapped.
func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	fi, err := os.Stat(s.Dir)
	if err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("credentials directory %s may be written by others (mode %04o): run chmod 700 %s", s.Dir, fi.Mode().Perm(), s.Dir)
	}
	if err := ownedByMe(fi); err != nil {
		return fmt.Errorf("credentials directory %s: %w", s.Dir, err)
	}
	return nil
}

func (s *Store) lock() (unlock func(), err error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("credentials lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("credentials lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// read loads the credentials file, refusing one others may read: it holds
// tokens that act as the user.
func (s *Store) read() (*Credentials, error) {
	path := s.Path()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Credentials{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credentials file %s is open to other users (mode %04o): refusing to use it; run chmod 600 %s, and sign in again (berth login) if others could have read it", path, fi.Mode().Perm(), path)
	}
	if err := ownedByMe(fi); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	var c Credentials
	if err := json.NewDecoder(f).Decode(&c); err != nil {
		return nil, fmt.Errorf("credentials file %s is damaged (%v): remove it and sign in again", path, err)
	}
	return &c, nil
}

// write replaces the credentials file: a new 0600 file renamed over the
// old, so a reader never sees half a file.
func (s *Store) write(c *Credentials) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.Path()); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

// ownedByMe refuses a file or directory another user owns.
func ownedByMe(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by user %d, not by you (%d)", st.Uid, uid)
	}
	return nil
}

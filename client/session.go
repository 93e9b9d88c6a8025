package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// SessionError says the user has no usable session on Server and what to
// do: sign in (again).
type SessionError struct {
	Server string
	// Ended is why an existing session is over; empty when there never
	// was one.
	Ended string
}

func (e *SessionError) Error() string {
	if e.Ended != "" {
		return fmt.Sprintf("your session on %s has ended (%s): sign in again with: berth login %s", e.Server, e.Ended, e.Server)
	}
	return fmt.Sprintf("not signed in to %s: sign in with: berth login %s", e.Server, e.Server)
}

// RefreshMargin is how long before its expiry a cached access token is
// replaced: a fifth of its life, at most two minutes. kubectl is told the
// token expires this much earlier than it does, so a request it sends
// just before never arrives with an expired token.
func RefreshMargin(ttl time.Duration) time.Duration {
	return min(ttl/5, 2*time.Minute)
}

// Credential is an access token and the time, by this machine's clock,
// from which it should no longer be used.
type Credential struct {
	Token     string
	ExpiresAt time.Time
}

// Asker is the process `berth credential` answers (kubectl, its parent)
// and the cluster it asked for.
type Asker struct {
	PID     int    `json:"pid"`
	Cluster string `json:"cluster"`
}

// Credential returns an access token for server. The cached token is
// given while it is fresh, so most calls make no request at all; else
// the stored refresh token is traded for new tokens, under the store's
// lock, so that concurrent callers refresh once between them.
//
// force asks for a token other than the cached one (a request with it was
// refused). An asker that was already handed the cached token and asks
// again before its expiry is taken as the same signal: client-go runs the
// credential plugin again within one kubectl only when its token expired
// or a request was answered 401. That way a token revoked, or whose
// signing key was withdrawn, is replaced after one failed request, and a
// session that has ended is said so in words.
func (s *Store) Credential(ctx context.Context, server string, asker *Asker, force bool) (Credential, error) {
	var cred Credential
	err := s.Update(func(c *Credentials) error {
		e := c.Find(server)
		if e == nil {
			return &SessionError{Server: server}
		}
		var err error
		cred, err = s.credential(ctx, e, asker, force)
		return err
	})
	return cred, err
}

// credential is Credential on an entry, under the lock. It returns a
// *keepError when the entry changed but the caller gets no token.
func (s *Store) credential(ctx context.Context, e *Entry, asker *Asker, force bool) (Credential, error) {
	if e.RefreshToken == "" {
		return Credential{}, &SessionError{Server: e.Server, Ended: e.Ended}
	}
	now := s.now()
	margin := RefreshMargin(e.AccessTTL)
	fresh := e.AccessToken != "" && now.Before(e.AccessExpiresAt.Add(-margin))
	if fresh && asker != nil && slices.Contains(e.Served, *asker) {
		force = true
	}
	if fresh && !force {
		e.serve(asker)
		return Credential{Token: e.AccessToken, ExpiresAt: e.AccessExpiresAt.Add(-margin)}, nil
	}
	hc, err := HTTPClient(e.TLS())
	if err != nil {
		return Credential{}, err
	}
	cl := &Client{Server: e.Server, HTTP: hc, UserAgent: UserAgent}
	t, err := cl.Refresh(ctx, e.RefreshToken)
	switch {
	case err == nil:
		e.setTokens(t, now)
		e.serve(asker)
		return Credential{Token: e.AccessToken, ExpiresAt: e.AccessExpiresAt.Add(-RefreshMargin(e.AccessTTL))}, nil
	case IsUnauthenticated(err):
		// The refresh token is spent, revoked or expired with its
		// session: nothing stored works any more.
		var ae *APIError
		errors.As(err, &ae)
		e.clearTokens("Berth refused to renew it: " + strings.TrimSuffix(ae.Message, "."))
		return Credential{}, &keepError{&SessionError{Server: e.Server, Ended: e.Ended}}
	case !force && e.AccessToken != "" && now.Before(e.AccessExpiresAt):
		// Berth could not be asked (down, unreachable, busy) but the
		// cached token still works for a while: use it to its end.
		e.serve(asker)
		return Credential{Token: e.AccessToken, ExpiresAt: e.AccessExpiresAt}, nil
	}
	return Credential{}, fmt.Errorf("renewing the session on %s: %w", e.Server, err)
}

// serve records that asker was handed the current access token.
func (e *Entry) serve(a *Asker) {
	if a == nil || slices.Contains(e.Served, *a) {
		return
	}
	e.Served = append(e.Served, *a)
	if n := len(e.Served) - maxServed; n > 0 {
		e.Served = e.Served[n:]
	}
}

// UserAgent is how the berth command names itself to Berth.
var UserAgent = "berth-cli"

// Resolve names the server a command works on: flag when given, else
// the current one (the last signed in), else the only one stored.
func (s *Store) Resolve(flag string) (string, error) {
	if flag != "" {
		return ParseServer(flag)
	}
	var server string
	err := s.View(func(c *Credentials) error {
		switch {
		case c.Current != "" && c.Find(c.Current) != nil:
			server = c.Current
		case len(c.Servers) == 1:
			server = c.Servers[0].Server
		case len(c.Servers) == 0:
			return errors.New("not signed in to any Berth: sign in with: berth login https://berth.example.com")
		default:
			names := make([]string, len(c.Servers))
			for i, e := range c.Servers {
				names[i] = e.Server
			}
			return fmt.Errorf("signed in to several Berths (%s): choose one with --server", strings.Join(names, ", "))
		}
		return nil
	})
	return server, err
}

// Entry returns a copy of server's entry.
func (s *Store) Entry(server string) (*Entry, error) {
	var out *Entry
	err := s.View(func(c *Credentials) error {
		e := c.Find(server)
		if e == nil {
			return &SessionError{Server: server}
		}
		cp := *e
		out = &cp
		return nil
	})
	return out, err
}

// Client returns an API client for server whose calls carry the stored
// session's access token, renewed as Credential does.
func (s *Store) Client(server string) (*Client, error) {
	e, err := s.Entry(server)
	if err != nil {
		return nil, err
	}
	hc, err := HTTPClient(e.TLS())
	if err != nil {
		return nil, err
	}
	return &Client{Server: server, HTTP: hc, UserAgent: UserAgent,
		Token: func(ctx context.Context, forceNew bool) (string, error) {
			cred, err := s.Credential(ctx, server, nil, forceNew)
			return cred.Token, err
		}}, nil
}

// SaveLogin stores the tokens of a sign-in to e.Server, got by a request
// sent at start, and makes it the current server.
func (s *Store) SaveLogin(e *Entry, t *Tokens, start time.Time) error {
	e.setTokens(t, start)
	return s.Update(func(c *Credentials) error {
		c.Put(e)
		c.Current = e.Server
		return nil
	})
}

// Logout ends the session on server at Berth and forgets it here. The
// entry is removed even when Berth cannot be told; the error then says
// the session may still be alive there.
func (s *Store) Logout(ctx context.Context, server string) error {
	return s.Update(func(c *Credentials) error {
		e := c.Find(server)
		if e == nil {
			return &SessionError{Server: server}
		}
		defer c.Remove(server)
		if e.RefreshToken == "" {
			return nil
		}
		cred, err := s.credential(ctx, e, nil, false)
		if err != nil {
			var se *SessionError
			if errors.As(err, &se) {
				return nil // already over
			}
			return &keepError{fmt.Errorf("signed out here, but Berth could not be told, so the session may live on until it expires: %w", err)}
		}
		hc, err := HTTPClient(e.TLS())
		if err != nil {
			return &keepError{err}
		}
		cl := &Client{Server: server, HTTP: hc, UserAgent: UserAgent}
		// Not through call: a 401 here means the session is already over.
		if _, err := cl.send(ctx, http.MethodPost, "/api/v1/auth/logout", cred.Token, nil); err != nil && !IsUnauthenticated(err) {
			return &keepError{fmt.Errorf("signed out here, but Berth could not be told, so the session may live on until it expires: %w", err)}
		}
		return nil
	})
}

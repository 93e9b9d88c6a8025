// Package dextest runs Dex, a real OpenID Connect provider, on a loopback
// port for single sign-on's tests: static clients, static users with
// passwords and groups (its password connector, signed in through its
// HTML login form), in-memory storage, and an ID token lifetime the test
// chooses.
//
// The dex binary comes from $BERTH_DEX, else from the cache
// ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/dex/<Version>/dex, built on first
// use with `go build` from the tools module in testdata/dex (the Go module
// proxy is all it needs; minutes on a cold build cache). When it cannot be
// had the test fails under BERTH_E2E=1 and is skipped, saying so,
// otherwise.
package dextest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/internal/syncbuf"
	"github.com/berthgw/berth/sdk/testpeer"
)

// Version is the pinned Dex release; Commit is its commit, which
// testdata/dex/go.mod requires as a pseudo-version.
const (
	Version = "v2.45.1"
	Commit  = "11d2eeb52b42"
)

// EnvDex names a dex binary to use instead of the cached build.
const EnvDex = "BERTH_DEX"

var peer = testpeer.Peer{
	Name: "dex", Version: Version, Package: "github.com/dexidp/dex/cmd/dex", ToolsDir: ToolsDir(),
	LDFlags: "-X main.version=" + Version, Env: EnvDex, Reports: reportsVersion,
}

// ToolsDir is the tools module Dex is built from.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "dex")
}

// Binary returns the dex binary, building it into the cache when missing.
func Binary(t testing.TB) string { return peer.Binary(t) }

func reportsVersion(bin string) bool {
	out, err := exec.Command(bin, "version").Output()
	return err == nil && bytes.Contains(out, []byte("Dex Version: "+Version+"\n"))
}

// Client is a static OAuth client of Dex.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// User is a static user of Dex's password connector. Login is the email.
type User struct {
	Email, Password   string
	Username          string
	PreferredUsername string
	// UserID is the stable id Dex builds sub from.
	UserID string
	Groups []string
	// EmailUnverified makes Dex say email_verified: false.
	EmailUnverified bool
}

// Options configure one Dex.
type Options struct {
	Clients []Client
	Users   []User
	// IDTokenTTL is the ID tokens' lifetime; zero means 5 minutes.
	IDTokenTTL time.Duration
}

// Dex is a running Dex.
type Dex struct {
	// Issuer is its issuer, http://127.0.0.1:<port>/dex.
	Issuer string
	out    *syncbuf.Buffer
}

// Start runs Dex until the test ends.
func Start(t testing.TB, opts Options) *Dex {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	ports, err := freeport.Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	d := &Dex{Issuer: "http://" + addr + "/dex", out: &syncbuf.Buffer{}}
	ttl := opts.IDTokenTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	var clients []map[string]any
	for _, c := range opts.Clients {
		clients = append(clients, map[string]any{"id": c.ID, "secret": c.Secret, "name": c.ID, "redirectURIs": c.RedirectURIs})
	}
	var users []map[string]any
	for _, u := range opts.Users {
		// The lowest cost bcrypt allows Dex (10): the hashes are made
		// once per test.
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), 10)
		if err != nil {
			t.Fatal(err)
		}
		entry := map[string]any{"email": u.Email, "hash": string(hash), "username": u.Username,
			"preferredUsername": u.PreferredUsername, "userID": u.UserID, "groups": u.Groups}
		if u.EmailUnverified {
			entry["emailVerified"] = false
		}
		users = append(users, entry)
	}
	// JSON is YAML; Dex reads either.
	cfg, _ := json.Marshal(map[string]any{
		"issuer":           d.Issuer,
		"storage":          map[string]any{"type": "memory"},
		"web":              map[string]any{"http": addr},
		"expiry":           map[string]any{"idTokens": ttl.String()},
		"oauth2":           map[string]any{"skipApprovalScreen": true, "responseTypes": []string{"code"}},
		"enablePasswordDB": true,
		"staticClients":    clients,
		"staticPasswords":  users,
		"logger":           map[string]any{"level": "debug"},
	})
	cfgPath := filepath.Join(dir, "dex.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("dextest: start dex: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("dex output:\n%s", d.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-done:
			t.Fatalf("dextest: dex exited:\n%s", d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dextest: dex did not answer in 30s:\n%s", d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// SignIn plays a person at a browser: it follows authURL (the provider's
// authorization URL, as Berth redirected to it) through Dex's password
// form, signs in as login with password, and returns the URL Dex then
// sends the browser to — the client's redirect URI with code and state —
// without following it. browser keeps Dex's cookies and must not follow
// redirects itself.
func (d *Dex) SignIn(t testing.TB, browser *http.Client, authURL, login, password string) *url.URL {
	t.Helper()
	next := authURL
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatalf("dextest: too many redirects from %s", authURL)
		}
		resp, err := browser.Get(next)
		if err != nil {
			t.Fatalf("dextest: GET %s: %v", next, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			next = u.String()
			continue
		}
		m := formAction.FindSubmatch(body)
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("dextest: GET %s: %d, no login form:\n%s", next, resp.StatusCode, body)
		}
		action, err := resp.Request.URL.Parse(strings.ReplaceAll(string(m[1]), "&amp;", "&"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err = browser.PostForm(action.String(), url.Values{"login": {login}, "password": {password}})
		if err != nil {
			t.Fatalf("dextest: sign in: %v", err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("dextest: sign in as %s: %d:\n%s", login, resp.StatusCode, body)
		}
		u, err := resp.Request.URL.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
}

// Logs is what Dex has written so far.
func (d *Dex) Logs() string { return d.out.String() }

// String names the server in test output.
func (d *Dex) String() string { return fmt.Sprintf("dex %s at %s", Version, d.Issuer) }

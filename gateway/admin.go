package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// AdminSocketName is the unix socket in the data directory through which
// `berth backup` reaches a running server. Badger holds an exclusive lock on
// the directory, so a second process cannot open the store; the socket is
// 0600 in a 0700 directory, so only the account running Berth can use it,
// which is the same trust as reading the data files directly.
const AdminSocketName = "admin.sock"

// maxSocketPath leaves room under the kernel's 108-byte sun_path limit.
const maxSocketPath = 104

// AdminSocketPath returns the admin socket's path for a data directory.
func AdminSocketPath(dataDir string) string { return filepath.Join(dataDir, AdminSocketName) }

// adminSocket is the admin socket: Listen binds it, and as a component it
// serves from Start to Stop.
type adminSocket struct {
	ln  net.Listener
	srv *http.Server
}

func listenAdmin(dataDir string, db *store.DB, log *slog.Logger) (*adminSocket, error) {
	path := AdminSocketPath(dataDir)
	if len(path) > maxSocketPath {
		log.Warn("data dir path too long for the admin socket; online backup disabled", "path_len", len(path))
		return nil, nil
	}
	// On etcd nothing else creates the data directory.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	removeStale(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := db.Backup(w); err != nil {
			log.Error("online backup failed", "err", err)
			// Headers may be sent already; break the stream so the client
			// sees a short read instead of a truncated "success".
			panic(http.ErrAbortHandler)
		}
		log.Info("online backup written")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return &adminSocket{ln: ln, srv: srv}, nil
}

// Start serves the socket; a nil socket (disabled) does nothing.
func (a *adminSocket) Start(context.Context) error {
	if a != nil {
		go func() { _ = a.srv.Serve(a.ln) }()
	}
	return nil
}

// Stop lets a backup in progress finish for a few seconds, on its own
// clock: the shutdown timeout may be spent draining HTTP connections.
func (a *adminSocket) Stop(context.Context) error {
	if a == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	return nil
}

// closeListener closes the socket when it was never served.
func (a *adminSocket) closeListener() {
	if a != nil {
		_ = a.ln.Close()
	}
}

package pluginhost

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

// copyExecutable copies the executable at src to a fresh path, which the
// test may then replace.
func copyExecutable(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestReloadReverifiesExecutable: an executable replaced under an
// unchanged declaration is caught by the next reload, which stops the old
// process and refuses the new file with both digests — not left running
// until its next crash.
func TestReloadReverifiesExecutable(t *testing.T) {
	path := copyExecutable(t, build(t, testplugin))
	spec := Plugin{Name: "tp", Path: path, SHA256: sha(t, path)}
	th := newHost(t, testSettings(spec))
	th.start(t)
	old := pid(t, th, "tp")

	// Replace the file (a new inode, as an upgrade by copy-and-rename does).
	other := build(t, "./testdata/stdoutinit")
	data, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}

	code, body := reloadHTTP(th, "tp")
	if code == 200 {
		t.Fatalf("reload of a replaced executable: %d %s", code, body)
	}
	st := th.status(t, "tp")
	if st.State != StateFailed {
		t.Errorf("state = %s, want failed", st.State)
	}
	for _, w := range []string{"checksums did not match", "expected sha256 " + spec.SHA256, "has sha256 " + sha(t, path)} {
		if !strings.Contains(st.LastError, w) {
			t.Errorf("last error %q lacks %q", st.LastError, w)
		}
	}
	waitFor(t, "the old process to end", func() bool { return !alive(old) })
}

// TestStatusTellsTheTruth: health is known as soon as the plugin runs, its
// channels are listed, restarts count the failed starts, and the last
// error goes once the plugin runs again while its history stays.
func TestStatusTellsTheTruth(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	gone := Plugin{Name: "gone", Path: filepath.Join(t.TempDir(), "gone"), SHA256: strings.Repeat("0", 64), Capabilities: []string{"notifier"}}
	o := testSettings(declare(t, "tp", testplugin, nil, "TESTPLUGIN_CRASH_FILE="+crash), gone)
	o.HealthInterval = time.Hour // no periodic check: health comes from the start
	th := newHost(t, o)
	th.start(t)
	if st := th.status(t, "gone"); st.State != StateFailed || !slices.Equal(st.Capabilities, []string{"notifier"}) {
		t.Errorf("a plugin that never started: state %s, capabilities %v; want failed, its declared [notifier]", st.State, st.Capabilities)
	}
	st := th.status(t, "tp")
	if want := []string{"billing", "notifier"}; !slices.Equal(slices.Sorted(slices.Values(st.Capabilities)), want) {
		t.Errorf("capabilities = %v, want %v", st.Capabilities, want)
	}
	if st.State != StateRunning || st.Health != sdk.HealthServing.String() {
		t.Errorf("after start: state %s, health %q; want running, serving", st.State, st.Health)
	}
	if want := []string{"ok", "pid", "block", "hang", "fail"}; !slices.Equal(st.Channels, want) {
		t.Errorf("channels = %v, want %v", st.Channels, want)
	}

	// The process dies and cannot come back for a while: every failed
	// start is a restart too.
	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid(t, th, "tp"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failed starts counted", func() bool { return th.status(t, "tp").Restarts >= 3 })
	if st := th.status(t, "tp"); st.LastError == "" || st.State == StateRunning {
		t.Errorf("while failing: %+v", st)
	}
	if err := os.Remove(crash); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running again", func() bool { return th.status(t, "tp").State == StateRunning })
	st = th.status(t, "tp")
	if st.LastError != "" {
		t.Errorf("last error after recovery = %q, want none", st.LastError)
	}
	if len(st.RecentErrors) < 2 {
		t.Errorf("recent errors = %+v, want the crash and the failed starts", st.RecentErrors)
	}
	if st.Health != sdk.HealthServing.String() {
		t.Errorf("health after the restart = %q", st.Health)
	}
}

// TestHangingStart: an optional plugin that hangs in Configure does not
// hold up Start, and its start ends with the limit's name, not a transport
// error; a required one makes Start fail saying the same.
func TestHangingStart(t *testing.T) {
	hang := filepath.Join(t.TempDir(), "hang")
	if err := os.WriteFile(hang, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := declare(t, "slow", testplugin, nil, "TESTPLUGIN_HANG_CONFIGURE_FILE="+hang)
	o := testSettings(spec)
	o.StartTimeout = 3 * time.Second
	th := newHost(t, o)
	if err := th.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	in, err := th.instance("slow")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.firstDone:
		t.Fatal("Start returned only after the optional plugin's start ended")
	default:
	}
	th.settled(t)
	st := th.status(t, "slow")
	if !strings.Contains(st.LastError, "start_timeout (3s) exceeded during Configure") {
		t.Errorf("last error = %q", st.LastError)
	}
	if strings.Contains(st.LastError, "RST_STREAM") {
		t.Errorf("last error shows the transport's reset: %q", st.LastError)
	}

	spec.Required = true
	o = testSettings(spec)
	o.StartTimeout = 3 * time.Second
	req := newHost(t, o)
	err = req.Start(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "start_timeout (3s) exceeded") {
		t.Errorf("Start with a required hanging plugin = %v", err)
	}
}

// TestPluginLogLines: at the gateway's info level, a plugin's stray prints
// are in the log under its name, no line carries the key "plugin" twice,
// a refused config says "invalid config" once, and a reload of an unknown
// plugin logs why.
func TestPluginLogLines(t *testing.T) {
	loud := declare(t, "loud", "./testdata/stdoutinit", nil)
	refused := declare(t, "refused", testplugin, map[string]any{"label": "forbidden"})
	th := newHostAt(t, slog.LevelInfo, testSettings(loud, refused))
	th.start(t)
	n, err := th.Notifier("loud")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prints in the log", func() bool {
		s := th.logs.String()
		return strings.Contains(s, "hello from init") && strings.Contains(s, "a print during a call")
	})
	if code, _ := reloadHTTP(th, "ghost"); code != 404 {
		t.Errorf("reload of an unknown plugin: %d", code)
	}
	sawPrint := false
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(th.logs.String())), []byte("\n")) {
		if n := bytes.Count(line, []byte(`"plugin":`)); n > 1 {
			t.Errorf("key plugin %d times: %s", n, line)
		}
		var l map[string]any
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		msg, _ := l["msg"].(string)
		if strings.Contains(msg, "hello from init") {
			sawPrint = true
			if l["level"] != "INFO" || l["plugin"] != "loud" {
				t.Errorf("stray print logged as %s", line)
			}
		}
		if msg == "plugin reload failed" && l["err"] == "" {
			t.Errorf("reload failure without its error: %s", line)
		}
	}
	if !sawPrint {
		t.Error("the stray print is not a log message of its own")
	}
	st := th.status(t, "refused")
	if strings.Count(st.LastError, "invalid config") != 1 || strings.Contains(st.LastError, "ValidateConfig") {
		t.Errorf("refused config error stutters: %q", st.LastError)
	}
}

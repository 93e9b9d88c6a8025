package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childDirEnv = "BERTH_STORE_DURABILITY_CHILD_DIR"

// TestDurabilityChild is the writer process of TestKillNineKeepsAcknowledgedWrites;
// it does nothing in a normal run.
func TestDurabilityChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		return
	}
	db, err := Open(Options{Dir: dir, SyncWrites: true})
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	tab := accounts()
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		id := NewID("dur")
		err := db.Update(func(tx *Tx) error {
			return tab.Insert(tx, id, &account{Name: id, Email: id, Count: i})
		})
		if err != nil {
			fmt.Println("write-error", err)
			os.Exit(4)
		}
		// Acknowledge only after Update returned: this is the promise a
		// client of the API gets.
		fmt.Fprintln(out, "ack", id)
		out.Flush()
	}
}

// A kill -9 in the middle of a burst of writes loses nothing that was
// acknowledged, over many rounds on the same data directory.
func TestKillNineKeepsAcknowledgedWrites(t *testing.T) {
	if os.Getenv(childDirEnv) != "" {
		return
	}
	dir := t.TempDir()
	var acked []string
	const rounds = 12
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rand.IntN(150)
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			id, ok := strings.CutPrefix(line, "ack ")
			if !ok {
				t.Fatalf("round %d: child said %q", round, line)
			}
			acked = append(acked, id)
			if n++; n == killAfter {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		// Acks already in the pipe when the kill landed still count.
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				acked = append(acked, id)
			}
		}
		_ = cmd.Wait()
		if n < killAfter {
			t.Fatalf("round %d: child stopped after %d acks before being killed", round, n)
		}
	}

	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer db.Close()
	tab := accounts()
	missing := 0
	must(t, db.View(func(tx *Tx) error {
		for _, id := range acked {
			if _, err := tab.Get(tx, id); err != nil {
				missing++
			}
		}
		return nil
	}))
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost after %d kill -9 rounds", missing, len(acked), rounds)
	}
	t.Logf("%d acknowledged writes over %d kill -9 rounds, all present", len(acked), rounds)
}

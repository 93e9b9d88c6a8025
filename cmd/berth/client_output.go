package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"

	"github.com/berthgw/berth/client"
)

func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "", "output format: table (default), json or yaml")
}

// table is a kubectl-like table of aligned columns.
type table struct{ tw *tabwriter.Writer }

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

// output writes raw (Berth's answer, as sent) as JSON or YAML when -o
// asks for it, else the table rows makes.
func output(cmd *cobra.Command, raw any, rows func(*table)) error {
	format, _ := cmd.Flags().GetString("output")
	w := cmd.OutOrStdout()
	switch format {
	case "", "table":
		if rows == nil {
			return nil
		}
		t := &table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
		rows(t)
		return t.tw.Flush()
	case "json":
		data, err := json.MarshalIndent(raw, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case "yaml":
		data, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	return fmt.Errorf("--output %q: use table, json or yaml", format)
}

// list wraps items as the JSON and YAML outputs show a list.
func list(items []json.RawMessage) any {
	if items == nil {
		items = []json.RawMessage{}
	}
	return map[string]any{"items": items}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age is how long ago t was, as kubectl shows it.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// errOperationFailed is the exit of a watch whose operation failed or was
// cancelled; the message says why.
var errOperationFailed = errors.New("operation did not succeed")

// watchOperation follows operation id until it ends: a redrawn progress
// bar when standard output is a terminal, else one line per change. It
// fails when the operation does not succeed.
func watchOperation(ctx context.Context, cmd *cobra.Command, cl *client.Client, id string) error {
	interval := time.Second
	if cmd.Flags().Lookup("interval") != nil {
		interval, _ = cmd.Flags().GetDuration("interval")
	}
	if interval <= 0 {
		return errors.New("--interval must be positive")
	}
	w := cmd.OutOrStdout()
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	p := &progress{w: w, tty: tty}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		op, _, err := cl.Operation(ctx, id)
		if err != nil {
			p.end()
			return err
		}
		p.show(op)
		if op.Done() {
			p.end()
			if op.Status != "succeeded" {
				why := op.Error
				if why == "" {
					why = op.Status
				}
				return fmt.Errorf("%w: operation %s %s: %s", errOperationFailed, op.ID, op.Status, why)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			p.end()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// progress draws an operation's progress.
type progress struct {
	w    io.Writer
	tty  bool
	last string
	open bool // a bar is drawn without its newline
}

func (p *progress) show(op *client.Operation) {
	what := op.Status
	if op.Stage != "" {
		what += " " + op.Stage
	}
	if op.Message != "" {
		what += ": " + op.Message
	}
	if op.Error != "" && op.Status != "succeeded" {
		what += " (" + op.Error + ")"
	}
	line := fmt.Sprintf("%s %s %s %3d%% %s", op.ID, op.Type, op.Cluster, op.Percent, what)
	if line == p.last {
		return
	}
	p.last = line
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	const width = 30
	filled := min(max(op.Percent, 0), 100) * width / 100
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	// \r and "erase line" redraw in place.
	fmt.Fprintf(p.w, "\r\033[K%s %s [%s] %3d%% %s", op.Type, op.Cluster, bar, op.Percent, what)
	p.open = true
}

func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

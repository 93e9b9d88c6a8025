package main

import (
	"fmt"
	"strings"
	"time"
)

// aim is one of issue 22's aims for the proxied small GET, as a ratio of
// two targets measured in the same rounds.
type aim struct {
	backend, what string
	// ratio computes the figure from the backend's results; ok is false
	// when a target was not measured.
	ratio  func(s map[string]*smallResult) (float64, bool)
	limit  float64
	atMost bool // the figure must be at most limit (else at least)
}

// throughputRatio is a's requests per second over b's, per round, median.
func throughputRatio(a, b string) func(map[string]*smallResult) (float64, bool) {
	return func(s map[string]*smallResult) (float64, bool) {
		x, y := s[a], s[b]
		if x == nil || y == nil {
			return 0, false
		}
		return median(perRound(x.RPS, y.RPS)), true
	}
}

// cpuRatio is a's CPU per request over b's, per round, median.
func cpuRatio(a, b string) func(map[string]*smallResult) (float64, bool) {
	return func(s map[string]*smallResult) (float64, bool) {
		x, y := s[a], s[b]
		if x == nil || y == nil {
			return 0, false
		}
		return median(perRound(seconds(x.CPUPerOp), seconds(y.CPUPerOp))), true
	}
}

func seconds(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = v.Seconds()
	}
	return out
}

var issue22Aims = []aim{
	{"static", "Berth ÷ bare fasthttp proxy, req/s", throughputRatio("berth", "fasthttp"), 0.85, false},
	{"static", "Berth ÷ nginx, req/s", throughputRatio("berth", "nginx"), 0.8, false},
	{"static", "Berth ÷ bare fasthttp proxy, CPU per request", cpuRatio("berth", "fasthttp"), 1.2, true},
	{"kube", "Berth ÷ nginx, req/s", throughputRatio("berth", "nginx"), 0.9, false},
	// Not the issue's: the same aim against an nginx that makes the
	// apiserver do what Berth makes it do (impersonation checks).
	{"kube", "Berth ÷ nginx sending Berth's credential and impersonation headers (nginx-as), req/s", throughputRatio("berth", "nginx-as"), 0.9, false},
}

// writeAims adds the table of issue 22's aims, each met or not in this
// invocation.
func writeAims(b *strings.Builder, r *results) {
	var rows []string
	for _, a := range issue22Aims {
		s, ok := r.Small[a.backend]
		if !ok {
			continue
		}
		v, ok := a.ratio(s)
		if !ok {
			continue
		}
		met := v >= a.limit
		cmp := "≥"
		if a.atMost {
			met, cmp = v <= a.limit, "≤"
		}
		verdict := "**no**"
		if met {
			verdict = "yes"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %.2f | %s %.2f | %s |", a.backend, a.what, v, cmp, a.limit, verdict))
	}
	if m := r.BerthIdle; m != nil {
		verdict := "**no**"
		if m.RSS <= 50e6 {
			verdict = "yes"
		}
		rows = append(rows, fmt.Sprintf("| – | idle RSS of `berth serve`, MB (%.1f MiB) | %.1f | ≤ 50 | %s |", mib(m.RSS), float64(m.RSS)/1e6, verdict))
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("### Issue 22's aims in this invocation\n\nRatios within a round, median of the rounds.\n\n| backend | figure | measured | aim | met |\n|---|---|---:|---|---|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n\n")
}

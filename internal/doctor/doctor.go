// Package doctor runs checks, each of which says what it saw and the exact command that
// fixes what is wrong. The checks that need only the settings and the client config files
// live here; others (session, pull tokens, clock skew) are plugged in by the caller through
// NewCheck, so this package needs nothing from token/.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/cgrtools/docker-credential-cgr/internal/safetext"
)

// Status grades one result.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // works, but something will bite (an expiry soon, a stale secret)
	Fail Status = "fail" // a pull will fail or use the wrong credential
	Skip Status = "skip" // could not be checked here (and why)
)

// Result is one finding of a check.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Saw    string `json:"saw"`           // what the check saw; never a secret
	Fix    string `json:"fix,omitempty"` // the exact command (or step) that fixes it
}

// Check is one diagnosis. Run returns one result or several (one per file, host, token);
// results without a Check name get the check's.
type Check struct {
	Name string
	Run  func(ctx context.Context) []Result
}

// NewCheck makes a check from a function; the way to add checks from other packages.
func NewCheck(name string, run func(ctx context.Context) []Result) Check {
	return Check{Name: name, Run: run}
}

// Report is the outcome of Run.
type Report struct {
	OK      bool     `json:"ok"` // nothing failed
	Results []Result `json:"results"`
}

// Run runs the checks in order. A check that panics is reported as failed; the rest still run.
func Run(ctx context.Context, checks []Check) Report {
	r := Report{OK: true, Results: []Result{}}
	for _, c := range checks {
		for _, res := range runOne(ctx, c) {
			if res.Check == "" {
				res.Check = c.Name
			}
			// What a check saw may quote a server or a file: one printable line, in text
			// and in JSON alike (JSON escapes C0 controls, not C1 or bidi overrides).
			res.Check, res.Saw, res.Fix = safetext.Line(res.Check), safetext.Line(res.Saw), safetext.Line(res.Fix)
			if res.Status == Fail {
				r.OK = false
			}
			r.Results = append(r.Results, res)
		}
	}
	return r
}

func runOne(ctx context.Context, c Check) (out []Result) {
	defer func() {
		if p := recover(); p != nil {
			out = []Result{{Check: c.Name, Status: Fail, Saw: fmt.Sprintf("the check itself failed: %v", p)}}
		}
	}()
	if err := ctx.Err(); err != nil {
		return []Result{{Check: c.Name, Status: Skip, Saw: err.Error()}}
	}
	return c.Run(ctx)
}

// WriteText prints one line per result, and the fix indented under it.
func (r Report) WriteText(w io.Writer) {
	for _, res := range r.Results {
		fmt.Fprintf(w, "[%-4s] %s: %s\n", res.Status, res.Check, safetext.Line(res.Saw))
		if res.Fix != "" && res.Status != OK {
			fmt.Fprintf(w, "       fix: %s\n", safetext.Line(res.Fix))
		}
	}
	n := map[Status]int{}
	for _, res := range r.Results {
		n[res.Status]++
	}
	fmt.Fprintf(w, "%d ok, %d warn, %d fail, %d skipped\n", n[OK], n[Warn], n[Fail], n[Skip])
}

// WriteJSON prints the report as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

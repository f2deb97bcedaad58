package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// statusReport is `status --json`; it never holds a secret. It is what the credential chain
// holds (token.Chain.DescribeAll), so it agrees with get about every stored credential.
type statusReport struct {
	Registries       []string        `json:"registries"`
	Issuer           string          `json:"issuer"`
	Store            string          `json:"store"`
	LoggedIn         bool            `json:"logged_in"`
	SessionProblem   string          `json:"session_problem,omitempty"` // a session is stored but cannot serve (damaged)
	Kind             string          `json:"kind,omitempty"`
	Subject          string          `json:"subject,omitempty"`
	Email            string          `json:"email,omitempty"`
	Org              string          `json:"org,omitempty"`
	Identity         string          `json:"identity,omitempty"`
	RefreshExpiry    *time.Time      `json:"refresh_expiry,omitempty"`
	Tokens           []statusToken   `json:"tokens"`
	PullTokens       []statusPull    `json:"pull_tokens"`
	WorkloadIdentity string          `json:"workload_identity,omitempty"`
	Chainctl         string          `json:"chainctl,omitempty"` // chainctl's login, when get may use it
	Serving          []statusServing `json:"serving"`            // what get answers each host with
	Problems         []statusProblem `json:"problems"`           // what get would refuse, and the fix
	skew             time.Duration   // the session's
	renews           bool            // the session refreshes its tokens by itself
}

// Expiries are the issuer's times; skew (the issuer's clock minus ours) lets "in 5m" be
// judged as get judges it, whatever this machine's clock says.
type statusToken struct {
	Audience string    `json:"audience"`
	Expiry   time.Time `json:"expiry"`
	skew     time.Duration
}

type statusPull struct {
	Host     string    `json:"host"`
	Identity string    `json:"identity"`
	Name     string    `json:"name,omitempty"`
	Parent   string    `json:"parent,omitempty"`
	Expiry   time.Time `json:"expiry"`
	Renews   bool      `json:"renews"` // a login session replaces it before it expires
	// Problem: one is stored for Host but cannot be read (damaged); the rest is empty then.
	Problem string `json:"problem,omitempty"`
	skew    time.Duration
}

type statusServing struct {
	Host     string `json:"host"`
	Source   string `json:"source"` // "workload identity", "pull token", "session", "chainctl", "" (anonymous)
	Username string `json:"username,omitempty"`
	Fails    bool   `json:"fails,omitempty"` // get fails with it: a problem below says why
}

type statusProblem struct {
	Source string `json:"source"`
	Host   string `json:"host,omitempty"`
	Cause  string `json:"cause"`
	Fix    string `json:"fix,omitempty"`
}

// errStatus: status printed a report that says what is wrong; exit status 1, as chainctl's
// `auth status` exits 1 when not logged in, so scripts can test it.
var errStatus = errors.New("no usable credential")

func statusCmd(a *App) *cobra.Command {
	var wantJSON func() (bool, error)
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show who is logged in, where secrets are stored and when tokens expire",
		Long: `Show the registries served, what get answers each with (workload identity, pull token,
session, chainctl's login), the login session (subject, email, org), where secrets are stored,
when the cached token and the refresh token expire, and the stored pull tokens with their expiry.

Reads the store only: no network call, no refresh. Secrets are never printed.
Exit status 1 when no credential is configured or one that is cannot serve (the report says
which and what to run), as chainctl's auth status does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := wantJSON()
			if err != nil {
				return err
			}
			r, err := a.status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				d, _ := a.Deps(cmd.Context())
				now := time.Now()
				if d.Clock != nil {
					now = d.Clock.Now()
				}
				printStatus(a.Stdout, r, now)
			}
			if len(r.Problems) > 0 || !r.anyServed() {
				return errStatus
			}
			return nil
		},
	}
	wantJSON = outputFlags(cmd, "print the status as JSON")
	return cmd
}

// status reads the chain for every served host.
func (a *App) status(ctx context.Context) (statusReport, error) {
	d, err := a.Deps(ctx)
	if err != nil {
		return statusReport{}, err
	}
	r := statusReport{Registries: d.Settings.Registries, Issuer: d.Settings.Issuer, Store: d.Store.Describe(),
		Tokens: []statusToken{}, PullTokens: []statusPull{}, Serving: []statusServing{}, Problems: []statusProblem{},
		WorkloadIdentity: d.Settings.Identity}
	chain := token.DefaultChain(d)
	problem := func(src, host string, err error) {
		p := statusProblem{Source: src, Host: host, Cause: err.Error()}
		var fe *token.FixableError
		if errors.As(err, &fe) {
			p.Cause, p.Fix = fe.Cause, fe.Fix
		}
		for _, q := range r.Problems {
			if q.Source == p.Source && q.Cause == p.Cause {
				return // the session's problem is the same for every host
			}
		}
		r.Problems = append(r.Problems, p)
	}
	for i, host := range d.Settings.Registries {
		serving := statusServing{Host: host}
		for _, ss := range chain.DescribeAll(ctx, host) {
			st := ss.Status
			switch {
			case ss.Err != nil:
				problem(st.Source, host, token.StoreFailure(ss.Err))
				continue
			case !st.Configured:
				continue
			}
			if serving.Source == "" {
				serving.Source, serving.Username = st.Source, st.Username
				serving.Fails = st.Problem != nil
			}
			if st.Problem != nil {
				problem(st.Source, host, st.Problem)
			}
			switch st.Source {
			case "pull token":
				if pt, ok := st.Detail.(*token.PullToken); ok {
					r.PullTokens = append(r.PullTokens, statusPull{Host: host, Identity: pt.Identity, Name: pt.Name, Parent: pt.Parent, Expiry: pt.Expiry.UTC(), Renews: st.Renews, skew: pt.Skew()})
				} else if st.Problem != nil {
					r.PullTokens = append(r.PullTokens, statusPull{Host: host, Problem: causeOf(st.Problem)})
				}
			case "session":
				if i > 0 {
					continue
				}
				info, ok := st.Detail.(*token.SessionInfo)
				if !ok {
					if st.Problem != nil {
						r.SessionProblem = causeOf(st.Problem) // damaged: stored, but not readable
					}
					continue // or a `_token` given to store
				}
				r.LoggedIn, r.renews = true, st.Renews
				r.Kind, r.Subject, r.Email, r.Org, r.Identity = info.Kind, info.Subject, info.Email, info.Org, info.Identity
				r.skew = info.Skew
				if !info.RefreshExpiry.IsZero() {
					t := info.RefreshExpiry.UTC()
					r.RefreshExpiry = &t
				}
				for aud, exp := range info.Tokens {
					r.Tokens = append(r.Tokens, statusToken{Audience: aud, Expiry: exp.UTC(), skew: info.Skew})
				}
				sort.Slice(r.Tokens, func(i, j int) bool { return r.Tokens[i].Audience < r.Tokens[j].Audience })
			case "chainctl":
				r.Chainctl = strings.TrimSuffix(strings.TrimPrefix(st.Who, "chainctl's login ("), ")")
			}
		}
		r.Serving = append(r.Serving, serving)
	}
	return r, nil
}

// causeOf is a problem's cause without its fix (the Problems line has both).
func causeOf(err error) string {
	var fe *token.FixableError
	if errors.As(err, &fe) {
		return fe.Cause
	}
	return err.Error()
}

func (r statusReport) anyServed() bool {
	for _, s := range r.Serving {
		if s.Source != "" {
			return true
		}
	}
	return false
}

func printStatus(w io.Writer, r statusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "Registries served:\t%s\n", strings.Join(r.Registries, ", "))
	fmt.Fprintf(tw, "Issuer:\t%s\n", r.Issuer)
	fmt.Fprintf(tw, "Secrets stored in:\t%s\n", r.Store)
	for i, s := range r.Serving {
		label := ""
		if i == 0 {
			label = "get answers with:"
		}
		what := s.Source
		switch {
		case what == "":
			what = "nothing: anonymous pulls (public images only)"
		case s.Username != "" && s.Username != token.TokenUsername:
			what += " " + s.Username
		}
		if s.Fails {
			what += ", which cannot serve (see Problems)"
		}
		fmt.Fprintf(tw, "%s\t%s: %s\n", label, s.Host, what)
	}
	switch {
	case !r.LoggedIn && r.SessionProblem != "":
		fmt.Fprintf(tw, "Session:\tstored, but cannot serve (see Problems)\n")
	case !r.LoggedIn:
		fmt.Fprintf(tw, "Session:\tnot logged in (run `%s`)\n", token.LoginCommand)
	case r.Kind == "identity":
		fmt.Fprintf(tw, "Logged in as:\tidentity %s\n", r.Identity)
	default:
		who := r.Email
		if who == "" {
			who = r.Subject
		}
		fmt.Fprintf(tw, "Logged in as:\t%s\n", who)
	}
	if r.LoggedIn {
		if r.Email != "" || r.Kind == "identity" {
			fmt.Fprintf(tw, "Subject:\t%s\n", r.Subject)
		}
		if r.Org != "" {
			fmt.Fprintf(tw, "Org:\t%s\n", r.Org)
		}
		if r.RefreshExpiry != nil {
			fmt.Fprintf(tw, "Session expires:\t%s\n", doctor.When(*r.RefreshExpiry, now.Add(r.skew)))
		} else if r.Kind == "identity" {
			fmt.Fprintf(tw, "Session expires:\tnever (renewed by exchanging the identity token)\n")
		} else {
			fmt.Fprintf(tw, "Session expires:\twith its token (no refresh token)\n")
		}
		if len(r.Tokens) == 0 {
			fmt.Fprintf(tw, "Cached tokens:\tnone (minted at the next use)\n")
		}
		for i, t := range r.Tokens {
			label := ""
			if i == 0 {
				label = "Cached tokens:"
			}
			fmt.Fprintf(tw, "%s\taudience %s, %s\n", label, t.Audience, expiresText(t.Expiry, now.Add(t.skew), r.renews))
		}
	}
	if r.WorkloadIdentity != "" {
		fmt.Fprintf(tw, "Workload identity:\t%s (CGR_IDENTITY)\n", r.WorkloadIdentity)
	}
	if r.Chainctl != "" {
		fmt.Fprintf(tw, "chainctl login:\t%s (asked through `chainctl auth token`)\n", r.Chainctl)
	}
	if len(r.PullTokens) == 0 {
		fmt.Fprintf(tw, "Pull tokens:\tnone stored\n")
	}
	for i, p := range r.PullTokens {
		label := ""
		if i == 0 {
			label = "Pull tokens:"
		}
		if p.Problem != "" {
			fmt.Fprintf(tw, "%s\t%s: stored, but cannot serve (see Problems)\n", label, p.Host)
			continue
		}
		extra := []string{"identity " + p.Identity}
		if p.Name != "" {
			extra = append(extra, "name "+p.Name)
		}
		fmt.Fprintf(tw, "%s\t%s, %s (%s)\n", label, p.Host, expiresText(p.Expiry, now.Add(p.skew), p.Renews), strings.Join(extra, ", "))
	}
	for i, p := range r.Problems {
		label := ""
		if i == 0 {
			label = "Problems:"
		}
		line := p.Cause
		if p.Fix != "" {
			line += "; run `" + p.Fix + "`"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, line)
	}
}

// expiresText says when a credential expires; one that get renews by itself is not shown as
// EXPIRED (the next use renews it).
func expiresText(t, now time.Time, renews bool) string {
	if renews && !t.After(now) {
		return "expired " + t.UTC().Format("2006-01-02 15:04 UTC") + " (renewed at the next use)"
	}
	return "expires " + doctor.When(t, now)
}

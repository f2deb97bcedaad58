package cli

import (
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

// statusReport is `status --json`; it never holds a secret.
type statusReport struct {
	Registries       []string      `json:"registries"`
	Issuer           string        `json:"issuer"`
	Store            string        `json:"store"`
	LoggedIn         bool          `json:"logged_in"`
	Kind             string        `json:"kind,omitempty"`
	Subject          string        `json:"subject,omitempty"`
	Email            string        `json:"email,omitempty"`
	Org              string        `json:"org,omitempty"`
	Identity         string        `json:"identity,omitempty"`
	RefreshExpiry    *time.Time    `json:"refresh_expiry,omitempty"`
	Tokens           []statusToken `json:"tokens"`
	PullTokens       []statusPull  `json:"pull_tokens"`
	WorkloadIdentity string        `json:"workload_identity,omitempty"`
	skew             time.Duration // the session's
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
	skew     time.Duration
}

func init() {
	register("status", func(a *App) *cobra.Command {
		var wantJSON func() (bool, error)
		cmd := &cobra.Command{
			Use:   "status [--json]",
			Short: "Show who is logged in, where secrets are stored and when tokens expire",
			Long: `Show the registries served, the login session (subject, email, org), where secrets are
stored, when the cached token and the refresh token expire, and the stored pull tokens with
their expiry.

Reads the store only: no network call, no refresh. Secrets are never printed.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				asJSON, err := wantJSON()
				if err != nil {
					return err
				}
				ctx := cmd.Context()
				d, err := a.Deps(ctx)
				if err != nil {
					return err
				}
				s := token.NewSession(d)
				r := statusReport{Registries: d.Settings.Registries, Issuer: d.Settings.Issuer, Store: d.Store.Describe(), Tokens: []statusToken{}, PullTokens: []statusPull{}, WorkloadIdentity: d.Settings.Identity}
				info, err := s.Info(ctx)
				switch {
				case err == nil:
					r.LoggedIn = true
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
				case errors.Is(err, token.ErrNoCredential):
				default:
					return err
				}
				p := token.NewPullTokens(d, s)
				for _, host := range d.Settings.Registries {
					pt, err := p.Stored(ctx, host)
					if errors.Is(err, token.ErrNoCredential) {
						continue
					}
					if err != nil {
						fmt.Fprintf(a.Stderr, "warning: pull token for %s: %v\n", host, err)
						continue
					}
					r.PullTokens = append(r.PullTokens, statusPull{Host: host, Identity: pt.Identity, Name: pt.Name, Parent: pt.Parent, Expiry: pt.Expiry.UTC(), skew: pt.Skew()})
				}
				if asJSON {
					enc := json.NewEncoder(a.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(r)
				}
				now := time.Now()
				if d.Clock != nil {
					now = d.Clock.Now()
				}
				printStatus(a.Stdout, r, now)
				return nil
			},
		}
		wantJSON = outputFlags(cmd, "print the status as JSON")
		return cmd
	})
}

func printStatus(w io.Writer, r statusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "Registries served:\t%s\n", strings.Join(r.Registries, ", "))
	fmt.Fprintf(tw, "Issuer:\t%s\n", r.Issuer)
	fmt.Fprintf(tw, "Secrets stored in:\t%s\n", r.Store)
	switch {
	case !r.LoggedIn:
		fmt.Fprintf(tw, "Session:\tnot logged in (run `docker-credential-cgr login`)\n")
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
			fmt.Fprintf(tw, "%s\t%s, expires %s\n", label, t.Audience, doctor.When(t.Expiry, now.Add(t.skew)))
		}
	}
	if r.WorkloadIdentity != "" {
		fmt.Fprintf(tw, "Workload identity:\t%s (CGR_IDENTITY)\n", r.WorkloadIdentity)
	}
	if len(r.PullTokens) == 0 {
		fmt.Fprintf(tw, "Pull tokens:\tnone stored\n")
	}
	for i, p := range r.PullTokens {
		label := ""
		if i == 0 {
			label = "Pull tokens:"
		}
		extra := []string{"identity " + p.Identity}
		if p.Name != "" {
			extra = append(extra, "name "+p.Name)
		}
		fmt.Fprintf(tw, "%s\t%s, expires %s (%s)\n", label, p.Host, doctor.When(p.Expiry, now.Add(p.skew)), strings.Join(extra, ", "))
	}
}

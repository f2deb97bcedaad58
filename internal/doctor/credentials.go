package doctor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// The credential checks walk the chain get reads (token.DefaultChain: workload identity, pull
// token, session, chainctl) and ask each source what it holds and whether it can serve now,
// worded as get words it; then the clock against the issuer's, and with --image whether the
// credential's org is the image's.

const (
	refreshWarnWithin = 3 * 24 * time.Hour // warn when the session ends sooner
	skewWarn          = 30 * time.Second
	skewFail          = 5 * time.Minute
	checkTimeout      = 20 * time.Second // one network probe of a check
)

const relogin = config.AppName + " logout && " + token.LoginCommand

const clockFix = "sudo timedatectl set-ntp true   # sync the clock with NTP (or: sudo chronyc makestep)"

// CredentialChecks are the credential checks of one doctor run. They share one opening of the
// store (which never starts a login), what the session check learned, one listing of the orgs,
// and the --image probe.
type CredentialChecks struct {
	Settings config.Settings
	// Deps opens the store and builds the token dependencies (as get does).
	Deps  func(ctx context.Context) (token.Deps, error)
	Probe *ImageProbe // --image: the registry's answer, shared with the image org check

	once  sync.Once
	d     token.Deps
	err   error
	chain token.Chain
	info  *token.SessionInfo // nil: not logged in (or unreadable)
	sessV bool               // the session gave a valid token for the registry audience

	groupsOnce sync.Once
	groups     []token.Group
	groupsErr  error
}

// Checks are the credential checks in the order doctor runs them (after the standard ones and
// before the --image check); with an image, also the image org check.
func (c *CredentialChecks) Checks(image string) []Check {
	checks := []Check{
		NewCheck("workload identity", c.workloadCheck),
		NewCheck("pull token", c.pullTokenCheck),
		NewCheck("session", c.sessionCheck),
		NewCheck("chainctl", c.chainctlCheck),
		NewCheck("clock", c.clockCheck),
	}
	if image != "" {
		checks = append(checks, NewCheck("image org", func(ctx context.Context) []Result { return c.imageOrgCheck(ctx, image) }))
	}
	// A source's failure names doctor as its fix (the issuer did not answer): here that would
	// send the user round in a circle, so the fix says what to look at.
	for i := range checks {
		run := checks[i].Run
		checks[i].Run = func(ctx context.Context) []Result {
			out := run(ctx)
			for j := range out {
				if strings.HasPrefix(out[j].Fix, token.DoctorCommand) {
					out[j].Fix = fmt.Sprintf("check that %s answers from here (network, firewall, HTTPS_PROXY/NO_PROXY), then run %s again", c.Settings.Issuer, token.DoctorCommand)
				}
			}
			return out
		}
	}
	return checks
}

// deps opens the store once. Doctor never starts a login: it reports and says what to run.
func (c *CredentialChecks) deps(ctx context.Context) (token.Deps, error) {
	c.once.Do(func() {
		defer func() {
			if p := recover(); p != nil {
				c.err = fmt.Errorf("opening the store: %v", p)
			}
		}()
		d, err := c.Deps(ctx)
		if err != nil {
			c.err = err
			return
		}
		d.OpenBrowser = nil
		if d.Clock == nil {
			d.Clock = token.SystemClock{}
		}
		c.d, c.chain = d, token.DefaultChain(d)
		if info, err := token.NewSession(d).Info(ctx); err == nil {
			c.info = info
		}
	})
	return c.d, c.err
}

// storeSkip: the secret store check above says why the store does not open and what to run.
func storeSkip() []Result {
	return []Result{{Status: Skip, Saw: "not checked: the secret store cannot be opened (see the secret store check)"}}
}

func (c *CredentialChecks) now() time.Time { return c.d.Clock.Now() }

// source is the chain's source of that name.
func (c *CredentialChecks) source(name string) token.Source {
	for _, s := range c.chain {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// answers names the source get answers from for host, and whether one with precedence over
// name is configured (then name is not used for host).
func (c *CredentialChecks) shadowedBy(ctx context.Context, host, name string) string {
	for _, s := range c.chain {
		if s.Name() == name {
			return ""
		}
		if st, err := s.Describe(ctx, host); err == nil && st.Configured {
			return s.Name()
		}
	}
	return ""
}

// problem is the failed result of a source's *token.FixableError (or another error).
func problem(err error, context, fix string) Result {
	var fe *token.FixableError
	if errors.As(err, &fe) {
		if fe.Fix != "" {
			fix = fe.Fix
		}
		return Result{Status: Fail, Saw: context + ": " + fe.Cause, Fix: fix}
	}
	return Result{Status: Fail, Saw: context + ": " + err.Error(), Fix: fix}
}

// workloadCheck: with CGR_IDENTITY set, the exchange that get does first of all.
func (c *CredentialChecks) workloadCheck(ctx context.Context) []Result {
	if c.Settings.Identity == "" {
		return nil // no row: nothing to check, whatever the store says
	}
	d, err := c.deps(ctx)
	if err != nil {
		return storeSkip()
	}
	// Without a store the workload exchanges every time: a cached token would hide an
	// identity deleted since it was minted.
	nd := d
	nd.Store = nil
	w := token.NewWorkload(nd)
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	tok, err := w.Token(ctx, d.Settings.Audience)
	if err != nil {
		return []Result{problem(err, "CGR_IDENTITY="+d.Settings.Identity+" (it wins over pull tokens and the session)",
			"unset CGR_IDENTITY CGR_IDENTITY_TOKEN   # or set them to an existing assumable identity and its OIDC token")}
	}
	return []Result{{Status: OK,
		Saw: fmt.Sprintf("CGR_IDENTITY=%s exchanges for a token for %s valid until %s (it wins over pull tokens and the session)", d.Settings.Identity, d.Settings.Audience, When(tok.Expiry, tok.IssuerNow(c.now())))}}
}

// pullTokenCheck: each stored pull token as get judges it (expiry by the issuer's clock, a
// third of its lifetime for renewal), and whether the issuer still knows its identity (a
// deleted identity is refused with a bare 403 at pull time).
func (c *CredentialChecks) pullTokenCheck(ctx context.Context) []Result {
	if _, err := c.deps(ctx); err != nil {
		return storeSkip()
	}
	src := c.source("pull token")
	verified := map[string]*Result{} // identity → the issuer's verdict (nil: accepted)
	var out []Result
	for _, host := range c.Settings.Registries {
		name := "pull token " + host
		st, err := src.Describe(ctx, host)
		switch {
		case err != nil:
			r := problem(token.StoreFailure(err), "the stored pull token cannot be read", token.DoctorCommand)
			r.Check = name
			out = append(out, r)
			continue
		case !st.Configured:
			continue
		case st.Problem != nil:
			r := problem(st.Problem, "the pull token get would serve for "+host, token.SaveCommand)
			r.Check = name
			if pt, ok := st.Detail.(*token.PullToken); ok {
				// get's generic fix, made like for like (same lifetime, name and org).
				switch r.Fix {
				case token.SaveCommand:
					r.Fix = replaceFix(pt, true)
				case token.LoginCommand + " && " + token.SaveCommand:
					r.Fix = replaceFix(pt, false)
				}
			}
			out = append(out, r)
			continue
		}
		pt := st.Detail.(*token.PullToken)
		r := c.judgePullToken(ctx, host, pt, st, verified)
		r.Check = name
		if by := c.shadowedBy(ctx, host, "pull token"); by != "" {
			r.Saw += fmt.Sprintf(" (not used while the %s is set: it comes first)", by)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return []Result{{Status: OK, Saw: "no pull token stored"}}
	}
	return out
}

func (c *CredentialChecks) judgePullToken(ctx context.Context, host string, pt *token.PullToken, st token.Status, verified map[string]*Result) Result {
	local := c.now()
	now := pt.IssuerNow(local)
	desc := "identity " + pt.Identity
	if pt.Name != "" {
		desc += " (" + pt.Name + ")"
	}
	replace := replaceFix(pt, st.Renews)
	if pt.Expired(local) {
		// Expired, and the session can renew it (else st.Problem said so).
		return Result{Status: Warn,
			Saw: fmt.Sprintf("%s expired at %s; your login session replaces it at the next pull", desc, When(pt.Expiry, now)),
			Fix: replace}
	}
	v, ok := verified[pt.Identity]
	if !ok {
		v = c.verifyPullToken(ctx, desc, pt, replace)
		verified[pt.Identity] = v
	}
	if v != nil {
		return *v
	}
	if pt.Due(local) {
		if st.Renews {
			return Result{Status: OK,
				Saw: fmt.Sprintf("%s expires at %s (less than a third of its life left): your login session renews it at the next pull", desc, When(pt.Expiry, now))}
		}
		return Result{Status: Warn,
			Saw: fmt.Sprintf("%s will expire at %s, and no login session can renew it", desc, When(pt.Expiry, now)),
			Fix: token.LoginCommand + "   # then the next pull renews it"}
	}
	return Result{Status: OK, Saw: fmt.Sprintf("%s is valid until %s", desc, When(pt.Expiry, now))}
}

// replaceFix is the command that stores a new pull token like pt (same lifetime, name and org).
func replaceFix(pt *token.PullToken, loggedIn bool) string {
	ttl := pt.TTL
	if ttl <= 0 {
		ttl = token.DefaultPullTokenTTL
	}
	cmd := token.SaveCommand + " --ttl " + shortDuration(ttl)
	if pt.Name != "" && !strings.ContainsAny(pt.Name, " \t'\"$`\\;&|<>()*?[]#~") {
		cmd += " --name " + pt.Name
	}
	if pt.Parent != "" {
		cmd += " --parent " + pt.Parent
	}
	if !loggedIn {
		cmd = token.LoginCommand + " && " + cmd
	}
	return cmd
}

// shortDuration prints a duration as pull-token create reads it: "720h", "90s".
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
	}
}

// verifyPullToken exchanges the pull token at the issuer, as the registry does at pull time;
// nil when the issuer accepts it.
func (c *CredentialChecks) verifyPullToken(ctx context.Context, desc string, pt *token.PullToken, replace string) *Result {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := token.NewSTS(c.d).Exchange(ctx, pt.Token, []string{c.d.Settings.Audience}, pt.Identity)
	if err == nil {
		return nil
	}
	issuer := c.d.Settings.Issuer
	var se *token.STSError
	switch {
	case errors.As(err, &se) && se.Code == token.CodeNotFound:
		return &Result{Status: Fail,
			Saw: fmt.Sprintf("%s no longer exists at %s (identity not found: deleted): pulls with it are refused", desc, issuer),
			Fix: replace}
	case errors.As(err, &se) && strings.Contains(strings.ToLower(se.Message), "expire"):
		return &Result{Status: Fail,
			Saw: fmt.Sprintf("%s is refused by %s: %s (its keys expired, though this machine's clock says it is valid until %s: check the clock)", desc, issuer, se.Message, pt.Expiry.UTC().Format("2006-01-02 15:04 UTC")),
			Fix: replace}
	case errors.As(err, &se) && se.Status < 500:
		return &Result{Status: Fail, Saw: fmt.Sprintf("%s is refused by %s: %s", desc, issuer, se.Message), Fix: replace}
	default:
		return &Result{Status: Warn,
			Saw: fmt.Sprintf("%s could not be checked with %s: %v", desc, issuer, err),
			Fix: token.DoctorCommand + "   # again once the issuer answers"}
	}
}

// sessionCheck: is there a session, can it give a registry token now, and until when does
// its refresh token last. A damaged or expired session fails, as get fails on it.
func (c *CredentialChecks) sessionCheck(ctx context.Context) []Result {
	d, err := c.deps(ctx)
	if err != nil {
		return storeSkip()
	}
	host := d.Settings.Registries[0]
	st, err := c.source("session").Describe(ctx, host)
	switch {
	case err != nil:
		return []Result{problem(token.StoreFailure(err), "cannot read the stored session", token.DoctorCommand)}
	case !st.Configured:
		if by := c.shadowedBy(ctx, host, "session"); by != "" {
			return []Result{{Status: OK, Saw: "not logged in; pulls use the " + by + " above"}}
		}
		if cc, _ := c.source("chainctl").Describe(ctx, host); cc.Configured {
			return []Result{{Status: OK, Saw: "not logged in here; pulls use chainctl's login (below)"}}
		}
		return []Result{{Status: Warn,
			Saw: fmt.Sprintf("not logged in, and no pull token or workload identity: only public images pull (anonymously) from %s", strings.Join(d.Settings.Registries, ", ")),
			Fix: token.LoginCommand}}
	case st.Problem != nil:
		out := []Result{problem(st.Problem, "the stored session cannot serve", token.LoginCommand)}
		if info, ok := st.Detail.(*token.SessionInfo); ok {
			out = append(out, c.refreshResult(info))
		}
		return out
	}
	info, _ := st.Detail.(*token.SessionInfo)
	if info == nil { // a `_token` handed to store, no session
		return []Result{{Status: OK, Saw: fmt.Sprintf("a token given to `docker login` (%s) is served until %s; it does not renew itself", st.Who, When(st.Expiry, c.now().Add(st.Skew))), Fix: token.LoginCommand}}
	}
	desc := st.Who
	if info.Org != "" {
		desc += ", org " + info.Org
	}
	var out []Result
	ctx2, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	tok, err := token.NewSession(d).Token(ctx2, d.Settings.Audience)
	if err != nil {
		out = append(out, problem(err, "logged in as "+desc+", but no token for "+d.Settings.Audience+" can be had", relogin))
		if errors.Is(err, token.ErrLoginRequired) {
			return out // the refresh token's expiry says nothing now: it was refused
		}
	} else {
		c.sessV = true
		out = append(out, Result{Status: OK,
			Saw: fmt.Sprintf("logged in as %s; its registry token (audience %s) is valid until %s", desc, d.Settings.Audience, When(tok.Expiry, info.IssuerNow(c.now())))})
	}
	return append(out, c.refreshResult(info))
}

func (c *CredentialChecks) refreshResult(info *token.SessionInfo) Result {
	r := Result{Check: "session refresh"}
	now := info.IssuerNow(c.now()) // the refresh expiry is the issuer's time, as get judges it
	switch {
	case info.Kind == "identity":
		r.Status, r.Saw = OK, "identity session: renewed by exchanging the identity token, no refresh token to expire"
	case info.RefreshExpiry.IsZero():
		r.Status, r.Saw, r.Fix = Warn, "the session has no refresh token: it ends when its token expires", token.LoginCommand
	case !info.RefreshExpiry.After(now):
		r.Status, r.Fix = Fail, token.LoginCommand
		r.Saw = fmt.Sprintf("the session's refresh token expired at %s: a new login is needed", When(info.RefreshExpiry, now))
	case info.RefreshExpiry.Sub(now) < refreshWarnWithin:
		r.Status, r.Fix = Warn, token.LoginCommand
		r.Saw = fmt.Sprintf("the session's refresh token will expire at %s; log in again before then", When(info.RefreshExpiry, now))
	default:
		r.Status, r.Saw = OK, fmt.Sprintf("the session's refresh token is valid until %s", When(info.RefreshExpiry, now))
	}
	return r
}

// chainctlCheck: an existing chainctl login, the last source; asked as get asks it.
func (c *CredentialChecks) chainctlCheck(ctx context.Context) []Result {
	d, err := c.deps(ctx)
	if err != nil {
		return storeSkip()
	}
	host := d.Settings.Registries[0]
	src := c.source("chainctl")
	st, _ := src.Describe(ctx, host)
	if !st.Configured {
		return nil
	}
	cred, err := src.Credential(ctx, host, d.Settings.Audience)
	if err != nil {
		return []Result{problem(err, st.Who, token.LoginCommand)}
	}
	saw := fmt.Sprintf("%s gives a token for %s valid until %s", st.Who, d.Settings.Audience, When(cred.Expiry, cred.IssuerNow(c.now())))
	if by := c.shadowedBy(ctx, host, "chainctl"); by != "" {
		saw += " (not used: the " + by + " comes first)"
	} else {
		saw += "; get serves it because nothing else is configured here (" + token.LoginCommand + " to log in here)"
	}
	return []Result{{Status: OK, Saw: saw}}
}

// clockCheck compares this machine's clock with the issuer's, as the token package learns it
// (the Date header of an answer): token freshness is judged with it.
func (c *CredentialChecks) clockCheck(ctx context.Context) []Result {
	issuer := c.Settings.Issuer
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	skew, err := token.MeasureSkew(ctx, c.Settings.Issuer, nil)
	switch {
	case errors.Is(err, token.ErrNoDate):
		return []Result{{Status: Skip, Saw: issuer + " sent no Date header to compare clocks with"}}
	case err != nil:
		return []Result{{Status: Warn,
			Saw: fmt.Sprintf("cannot reach %s to compare clocks: %v", issuer, err),
			Fix: "check the network and proxy settings (HTTPS_PROXY, NO_PROXY) for " + c.Settings.IssuerHost()}}
	}
	abs := skew.Abs()
	dir := "behind"
	if skew < 0 {
		dir = "ahead of"
	}
	saw := fmt.Sprintf("this machine's clock is %s %s %s's", abs.Round(time.Second), dir, issuer)
	switch {
	case abs > skewFail:
		return []Result{{Status: Fail, Saw: saw + ": clock skew breaks token freshness (tokens look expired, or not yet valid)", Fix: clockFix}}
	case abs > skewWarn:
		return []Result{{Status: Warn, Saw: saw + ": clock skew breaks token freshness once it grows", Fix: clockFix}}
	}
	return []Result{{Status: OK, Saw: fmt.Sprintf("this machine's clock agrees with %s's within %s", issuer, skewWarn)}}
}

// imageOrgCheck names the org of the credential get would serve for the image's host and
// the image's org, and says so when they differ (the registry answers 403).
func (c *CredentialChecks) imageOrgCheck(ctx context.Context, image string) []Result {
	host, repo, err := SplitImage(image)
	if err != nil || !c.Settings.Serves(host) {
		return nil
	}
	imgOrg, _, _ := strings.Cut(repo, "/")
	if imgOrg == "chainguard" {
		return nil // public: the image check says what matters
	}
	if _, err := c.deps(ctx); err != nil {
		return storeSkip()
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()

	groups, groupsErr := c.orgGroups(ctx)
	if c.Probe != nil && c.Probe.Result(ctx).Probe.OrgUnresolved() {
		// No org has that name: no credential, login or pull token of it can help.
		return []Result{unresolvedOrg(host, image, imgOrg, groups)}
	}
	nameOf := func(id string) string {
		if n := groupName(groups, id); n != "" {
			return fmt.Sprintf("%q (%s)", n, id)
		}
		return id
	}
	imgOrgIs := func(id string) bool {
		for _, g := range groups {
			if g.ID == id {
				return strings.EqualFold(g.Name, imgOrg)
			}
		}
		return false
	}

	// The credential get serves first, if it names its org by itself.
	st, _ := c.chain.Describe(ctx, host)
	if st.Configured && (st.Source == "workload identity" || st.Source == "pull token") {
		credWho, credOrg := st.Who, st.Org
		named := nameOf(credOrg)
		switch {
		case imgOrgIs(credOrg):
			return []Result{{Status: OK, Saw: fmt.Sprintf("%s belongs to org %s, the image's org", credWho, named)}}
		case named != credOrg: // its org has a name, and it is not the image's
			return []Result{{Status: Fail,
				Saw: fmt.Sprintf("%s belongs to org %s, but the image %s is in org %q: the registry refuses it (403 Forbidden)", credWho, named, image, imgOrg),
				Fix: fmt.Sprintf("%s --parent %s   # a pull token of the image's org (you must be a member)", token.SaveCommand, imgOrg)}}
		default:
			return []Result{{Status: Skip,
				Saw: fmt.Sprintf("%s belongs to org %s; without a login its name cannot be looked up to compare with the image's org %q", credWho, credOrg, imgOrg)}}
		}
	}
	if c.info == nil {
		return nil // anonymous: the image check explains
	}
	who := orWho(c.info)
	if groupsErr != nil {
		return []Result{problem(groupsErr, "cannot list the orgs of "+who, relogin)}
	}
	var mine []string
	for _, g := range groups {
		if strings.EqualFold(g.Name, imgOrg) {
			return []Result{{Status: OK, Saw: fmt.Sprintf("%s is a member of org %s, the image's org", who, nameOf(g.ID))}}
		}
		if !strings.Contains(g.ID, "/") {
			mine = append(mine, nameOf(g.ID))
		}
	}
	sort.Strings(mine)
	orgs := "no org"
	if len(mine) > 0 {
		orgs = "org " + strings.Join(mine, ", org ")
	}
	return []Result{{Status: Fail,
		Saw: fmt.Sprintf("you are logged in as %s, a member of %s, but the image %s is in org %q: the registry refuses the token (403 Forbidden)", who, orgs, image, imgOrg),
		Fix: fmt.Sprintf("%s   # as an account that is a member of %s (or ask its admin to add you)", relogin, imgOrg)}}
}

func orWho(info *token.SessionInfo) string {
	switch {
	case info.Kind == "identity":
		return "identity " + info.Identity
	case info.Email != "":
		return info.Email
	default:
		return info.Subject
	}
}

// unresolvedOrg is the image org row when the registry cannot resolve the image's org: the
// image name is wrong. It names the login's orgs when they are known.
func unresolvedOrg(host, image, imgOrg string, groups []token.Group) Result {
	var names []string
	for _, g := range groups {
		if !strings.Contains(g.ID, "/") && g.Name != "" {
			names = append(names, fmt.Sprintf("%q", g.Name))
		}
	}
	sort.Strings(names)
	fix := OrgFix
	if len(names) > 0 {
		fix += "; your orgs: " + strings.Join(names, ", ")
	}
	return Result{Status: Fail,
		Saw: fmt.Sprintf("the image %s names org %q, which does not exist at %s (the registry cannot resolve it): the image name or the org's spelling is wrong", image, imgOrg, host),
		Fix: fix}
}

// orgGroups lists the orgs the login may act in (the platform API), once per doctor run;
// nil without a login. Call it after deps.
func (c *CredentialChecks) orgGroups(ctx context.Context) ([]token.Group, error) {
	if c.info == nil {
		return nil, nil
	}
	c.groupsOnce.Do(func() {
		c.groups, c.groupsErr = token.NewAPI(c.d, token.NewSession(c.d)).Groups(ctx)
	})
	return c.groups, c.groupsErr
}

// OrgName names an org id for the --image check ("" when there is no login or the login's
// orgs do not include it), through the same store and session as the other checks: it never
// starts a login.
func (c *CredentialChecks) OrgName(ctx context.Context, id string) string {
	if _, err := c.deps(ctx); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	groups, _ := c.orgGroups(ctx)
	return groupName(groups, id)
}

// groupName is the name of the org id among groups; "" when it is not one of them.
func groupName(groups []token.Group, id string) string {
	for _, g := range groups {
		if g.ID == id {
			return g.Name
		}
	}
	return ""
}

// When says when t is, relative to now: "2026-11-26 21:00 UTC (in 59m)".
func When(t, now time.Time) string {
	abs := t.UTC().Format("2006-01-02 15:04 UTC")
	d := t.Sub(now)
	if d <= 0 {
		return fmt.Sprintf("%s (EXPIRED %s ago)", abs, roughDuration(-d))
	}
	return fmt.Sprintf("%s (in %s)", abs, roughDuration(d))
}

func roughDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	default:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// The doctor checks that look at token state: the login session and its refresh token, the
// stored pull tokens, the workload identity, the clock against the issuer's, and with
// --image whether the credential's org is the image's.

const (
	refreshWarnWithin = 3 * 24 * time.Hour // warn when the session ends sooner
	skewWarn          = 30 * time.Second
	skewFail          = 5 * time.Minute
	checkTimeout      = 20 * time.Second // one network probe of a check
)

const (
	loginCmd      = token.LoginCommand
	relogin       = "docker-credential-cgr logout && docker-credential-cgr login"
	clockFix      = "sudo timedatectl set-ntp true   # sync the clock with NTP (or: sudo chronyc makestep)"
	stsNotFound   = 5 // gRPC NotFound
	stsInvalidArg = 3 // gRPC InvalidArgument: "this identity's keys have expired"
)

// checks are the token checks, in the order doctor runs them (after the standard ones and
// before the --image check); with an image, also the image org check.
func (s *tokenState) checks(image string) []doctor.Check {
	checks := []doctor.Check{
		doctor.NewCheck("session", s.sessionCheck),
		doctor.NewCheck("pull token", s.pullTokenCheck),
		doctor.NewCheck("workload identity", s.workloadCheck),
		doctor.NewCheck("clock", s.clockCheck),
	}
	if image != "" {
		checks = append(checks, doctor.NewCheck("image org", func(ctx context.Context) []doctor.Result {
			return s.imageOrgCheck(ctx, image)
		}))
	}
	return checks
}

// tokenState is what the token checks share: the dependencies, opened once, what the
// session check learned (the pull-token and image checks depend on it), and the orgs of
// the login, listed once.
type tokenState struct {
	a *App

	once  sync.Once
	d     token.Deps
	err   error
	sess  *token.Session
	info  *token.SessionInfo // nil: not logged in (or unreadable)
	sessV bool               // the session gave a valid token for the registry audience

	groupsOnce sync.Once
	groups     []token.Group
	groupsErr  error

	probe *doctor.ImageProbe // --image: the registry's answer, shared with the image org check
}

// deps opens the store once. Doctor never starts a login: it reports and says what to run.
func (s *tokenState) deps(ctx context.Context) (token.Deps, error) {
	s.once.Do(func() {
		defer func() {
			if p := recover(); p != nil {
				s.err = fmt.Errorf("opening the store: %v", p)
			}
		}()
		if s.a.NewDeps == nil { // an App built without main's wiring
			s.a.NewDeps = DefaultNewDeps(s.a.Stderr, s.a.Getenv, false)
		}
		d, err := s.a.Deps(ctx)
		if err != nil {
			s.err = err
			return
		}
		d.Interactive = false
		d.OpenBrowser = nil
		if d.Clock == nil {
			d.Clock = token.SystemClock{}
		}
		s.d = d
		s.sess = token.NewSession(d)
		if info, err := s.sess.Info(ctx); err == nil {
			s.info = info
		}
	})
	return s.d, s.err
}

// storeSkip: the secret store check above says why the store does not open and what to run.
func storeSkip(error) []doctor.Result {
	return []doctor.Result{{Status: doctor.Skip, Saw: "not checked: the secret store cannot be opened (see the secret store check)"}}
}

func (s *tokenState) now() time.Time { return s.d.Clock.Now() }

func who(info *token.SessionInfo) string {
	switch {
	case info.Kind == "identity":
		return "identity " + info.Identity
	case info.Email != "":
		return info.Email
	default:
		return info.Subject
	}
}

// sessionCheck: is there a session, can it give a registry token now, and until when does
// its refresh token last.
func (s *tokenState) sessionCheck(ctx context.Context) []doctor.Result {
	d, err := s.deps(ctx)
	if err != nil {
		return storeSkip(err)
	}
	info, err := s.sess.Info(ctx)
	switch {
	case errors.Is(err, token.ErrNoCredential):
		if d.Settings.Identity != "" || s.anyPullToken(ctx) {
			return []doctor.Result{{Status: doctor.OK, Saw: "not logged in; pulls use the pull token or workload identity below"}}
		}
		return []doctor.Result{{Status: doctor.Warn,
			Saw: fmt.Sprintf("not logged in, and no pull token or workload identity: only public images pull (anonymously) from %s", strings.Join(d.Settings.Registries, ", ")),
			Fix: loginCmd}}
	case err != nil:
		return []doctor.Result{fixResult(err, "cannot read the stored session", "docker-credential-cgr doctor")}
	}
	s.info = info
	desc := who(info)
	if info.Org != "" {
		desc += ", org " + info.Org
	}
	var out []doctor.Result
	ctx2, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	tok, err := s.sess.Token(ctx2, d.Settings.Audience)
	if err != nil {
		out = append(out, fixResult(err, "logged in as "+desc+", but no token for "+d.Settings.Audience+" can be had", relogin))
	} else {
		s.sessV = true
		out = append(out, doctor.Result{Status: doctor.OK,
			Saw: fmt.Sprintf("logged in as %s; its registry token (audience %s) is valid until %s", desc, d.Settings.Audience, when(tok.Expiry, info.IssuerNow(s.now())))})
	}
	out = append(out, s.refreshResult(info))
	return out
}

func (s *tokenState) refreshResult(info *token.SessionInfo) doctor.Result {
	r := doctor.Result{Check: "session refresh"}
	now := info.IssuerNow(s.now()) // the refresh expiry is the issuer's time, as get judges it
	switch {
	case info.Kind == "identity":
		r.Status, r.Saw = doctor.OK, "identity session: renewed by exchanging the identity token, no refresh token to expire"
	case info.RefreshExpiry.IsZero():
		r.Status, r.Saw, r.Fix = doctor.Warn, "the session has no refresh token: it ends when its token expires", loginCmd
	case !info.RefreshExpiry.After(now):
		r.Status, r.Fix = doctor.Fail, loginCmd
		r.Saw = fmt.Sprintf("the session's refresh token expired at %s: a new login is needed", when(info.RefreshExpiry, now))
	case info.RefreshExpiry.Sub(now) < refreshWarnWithin:
		r.Status, r.Fix = doctor.Warn, loginCmd
		r.Saw = fmt.Sprintf("the session's refresh token will expire at %s; log in again before then", when(info.RefreshExpiry, now))
	default:
		r.Status, r.Saw = doctor.OK, fmt.Sprintf("the session's refresh token is valid until %s", when(info.RefreshExpiry, now))
	}
	return r
}

// fixResult turns an error into a failed result: a *token.FixableError's cause and fix, else
// the error with a default fix.
func fixResult(err error, context, fix string) doctor.Result {
	var fe *token.FixableError
	if errors.As(err, &fe) {
		if fe.Fix != "" {
			fix = fe.Fix
		}
		return doctor.Result{Status: doctor.Fail, Saw: context + ": " + fe.Cause, Fix: fix}
	}
	return doctor.Result{Status: doctor.Fail, Saw: context + ": " + err.Error(), Fix: fix}
}

func (s *tokenState) anyPullToken(ctx context.Context) bool {
	p := token.NewPullTokens(s.d, nil)
	for _, h := range s.d.Settings.Registries {
		if _, err := p.Stored(ctx, h); !errors.Is(err, token.ErrNoCredential) {
			return true
		}
	}
	return false
}

// pullTokenCheck: each stored pull token, its expiry judged against a third of its lifetime,
// and whether the issuer still knows its identity (a deleted identity is refused with a
// bare 403 at pull time).
func (s *tokenState) pullTokenCheck(ctx context.Context) []doctor.Result {
	d, err := s.deps(ctx)
	if err != nil {
		return storeSkip(err)
	}
	p := token.NewPullTokens(d, s.sess)
	verified := map[string]*doctor.Result{} // identity → the issuer's verdict (nil: accepted)
	var out []doctor.Result
	for _, host := range d.Settings.Registries {
		name := "pull token " + host
		pt, err := p.Stored(ctx, host)
		if errors.Is(err, token.ErrNoCredential) {
			continue
		}
		if err != nil {
			r := fixResult(err, "the stored pull token cannot be read", "docker-credential-cgr pull-token create --save")
			r.Check = name
			out = append(out, r)
			continue
		}
		out = append(out, s.judgePullToken(ctx, name, host, pt, verified))
	}
	if len(out) == 0 {
		return []doctor.Result{{Status: doctor.OK, Saw: "no pull token stored"}}
	}
	return out
}

func (s *tokenState) judgePullToken(ctx context.Context, name, host string, pt *token.PullToken, verified map[string]*doctor.Result) doctor.Result {
	// Judged as get judges it: by the issuer's clock, which made its expiry.
	local := s.now()
	now := pt.IssuerNow(local)
	desc := "identity " + pt.Identity
	if pt.Name != "" {
		desc += " (" + pt.Name + ")"
	}
	replace := replaceFix(pt, s.sessV)
	expired := pt.Expired(local)
	switch {
	case expired && s.sessV:
		return doctor.Result{Check: name, Status: doctor.Warn,
			Saw: fmt.Sprintf("%s expired at %s; your login session replaces it at the next pull", desc, when(pt.Expiry, now)),
			Fix: replace}
	case expired:
		return doctor.Result{Check: name, Status: doctor.Fail,
			Saw: fmt.Sprintf("%s expired at %s and no valid login session can renew it: pulls get 401", desc, when(pt.Expiry, now)),
			Fix: loginCmd + "   # then the next pull replaces the pull token; or store a new one: docker-credential-cgr pull-token create --save"}
	}
	if v, ok := verified[pt.Identity]; ok {
		if v != nil {
			r := *v
			r.Check = name
			return r
		}
	} else {
		v := s.verifyPullToken(ctx, desc, pt, replace)
		verified[pt.Identity] = v
		if v != nil {
			r := *v
			r.Check = name
			return r
		}
	}
	if pt.Due(local) {
		if s.sessV {
			return doctor.Result{Check: name, Status: doctor.OK,
				Saw: fmt.Sprintf("%s expires at %s (less than a third of its life left): your login session renews it at the next pull", desc, when(pt.Expiry, now))}
		}
		return doctor.Result{Check: name, Status: doctor.Warn,
			Saw: fmt.Sprintf("%s will expire at %s, and no valid login session can renew it", desc, when(pt.Expiry, now)),
			Fix: loginCmd + "   # then the next pull renews it"}
	}
	return doctor.Result{Check: name, Status: doctor.OK, Saw: fmt.Sprintf("%s is valid until %s", desc, when(pt.Expiry, now))}
}

// replaceFix is the command that stores a new pull token like pt (same lifetime, name and org).
func replaceFix(pt *token.PullToken, loggedIn bool) string {
	ttl := pt.TTL
	if ttl <= 0 {
		ttl = token.DefaultPullTokenTTL
	}
	cmd := "docker-credential-cgr pull-token create --save --ttl " + shortDuration(ttl)
	if pt.Name != "" && !strings.ContainsAny(pt.Name, " \t'\"$`\\;&|<>()*?[]#~") {
		cmd += " --name " + pt.Name
	}
	if pt.Parent != "" {
		cmd += " --parent " + pt.Parent
	}
	if !loggedIn {
		cmd = loginCmd + " && " + cmd
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
func (s *tokenState) verifyPullToken(ctx context.Context, desc string, pt *token.PullToken, replace string) *doctor.Result {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := token.NewSTS(s.d).Exchange(ctx, pt.Token, []string{s.d.Settings.Audience}, pt.Identity)
	if err == nil {
		return nil
	}
	var se *token.STSError
	switch {
	case errors.As(err, &se) && se.Code == stsNotFound:
		return &doctor.Result{Status: doctor.Fail,
			Saw: fmt.Sprintf("%s no longer exists at %s (identity not found: deleted): pulls with it are refused", desc, s.d.Settings.Issuer),
			Fix: replace}
	case errors.As(err, &se) && strings.Contains(strings.ToLower(se.Message), "expire"):
		return &doctor.Result{Status: doctor.Fail,
			Saw: fmt.Sprintf("%s is refused by %s: %s (its keys expired, though this machine's clock says it is valid until %s: check the clock)", desc, s.d.Settings.Issuer, se.Message, pt.Expiry.UTC().Format("2006-01-02 15:04 UTC")),
			Fix: replace}
	case errors.As(err, &se) && se.Status < 500:
		return &doctor.Result{Status: doctor.Fail,
			Saw: fmt.Sprintf("%s is refused by %s: %s", desc, s.d.Settings.Issuer, se.Message),
			Fix: replace}
	default:
		return &doctor.Result{Status: doctor.Warn,
			Saw: fmt.Sprintf("%s could not be checked with %s: %v", desc, s.d.Settings.Issuer, err),
			Fix: "docker-credential-cgr doctor   # again once the issuer answers"}
	}
}

// workloadCheck: with CGR_IDENTITY set, the exchange that `get` does first of all.
func (s *tokenState) workloadCheck(ctx context.Context) []doctor.Result {
	if s.a.Settings.Identity == "" {
		return nil // no row: nothing to check, whatever the store says
	}
	d, err := s.deps(ctx)
	if err != nil {
		return storeSkip(err)
	}
	// Without a store the workload exchanges every time: a cached token would hide an
	// identity deleted since it was minted.
	nd := d
	nd.Store = nil
	w := token.NewWorkload(nd)
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	tok, err := w.Token(ctx, d.Settings.Audience)
	if err != nil {
		return []doctor.Result{fixResult(err, "CGR_IDENTITY="+d.Settings.Identity+" (it wins over pull tokens and the session)",
			"unset CGR_IDENTITY CGR_IDENTITY_TOKEN   # or set them to an existing assumable identity and its OIDC token")}
	}
	return []doctor.Result{{Status: doctor.OK,
		Saw: fmt.Sprintf("CGR_IDENTITY=%s exchanges for a token for %s valid until %s (it wins over pull tokens and the session)", d.Settings.Identity, d.Settings.Audience, when(tok.Expiry, s.now()))}}
}

// clockCheck compares this machine's clock with the issuer's Date header: token freshness
// is judged with it.
func (s *tokenState) clockCheck(ctx context.Context) []doctor.Result {
	issuer := s.a.Settings.Issuer
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return []doctor.Result{{Status: doctor.Skip, Saw: err.Error()}}
	}
	hc := &http.Client{Timeout: checkTimeout}
	start := time.Now()
	res, err := hc.Do(req)
	end := time.Now()
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return []doctor.Result{{Status: doctor.Warn,
			Saw: fmt.Sprintf("cannot reach %s to compare clocks: %v", issuer, err),
			Fix: "check the network and proxy settings (HTTPS_PROXY, NO_PROXY) for " + s.a.Settings.IssuerHost()}}
	}
	res.Body.Close()
	date, err := http.ParseTime(res.Header.Get("Date"))
	if err != nil {
		return []doctor.Result{{Status: doctor.Skip, Saw: issuer + " sent no Date header to compare clocks with"}}
	}
	// The Date header has one-second resolution: compare with the middle of the request.
	skew := date.Add(500 * time.Millisecond).Sub(start.Add(end.Sub(start) / 2))
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	dir := "behind"
	if skew < 0 {
		dir = "ahead of"
	}
	saw := fmt.Sprintf("this machine's clock is %s %s %s's", abs.Round(time.Second), dir, issuer)
	switch {
	case abs > skewFail:
		return []doctor.Result{{Status: doctor.Fail, Saw: saw + ": clock skew breaks token freshness (tokens look expired, or not yet valid)", Fix: clockFix}}
	case abs > skewWarn:
		return []doctor.Result{{Status: doctor.Warn, Saw: saw + ": clock skew breaks token freshness once it grows", Fix: clockFix}}
	}
	return []doctor.Result{{Status: doctor.OK, Saw: fmt.Sprintf("this machine's clock agrees with %s's within %s", issuer, skewWarn)}}
}

// imageOrgCheck names the org of the credential `get` would serve for the image's host and
// the image's org, and says so when they differ (the registry answers 403).
func (s *tokenState) imageOrgCheck(ctx context.Context, image string) []doctor.Result {
	host, repo, err := doctor.SplitImage(image)
	if err != nil {
		return nil
	}
	served := false
	for _, h := range s.a.Settings.Registries {
		served = served || h == host
	}
	imgOrg, _, _ := strings.Cut(repo, "/")
	if !served || imgOrg == "chainguard" {
		return nil // not ours, or public: the image check says what matters
	}
	d, err := s.deps(ctx)
	if err != nil {
		return storeSkip(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()

	groups, groupsErr := s.orgGroups(ctx)
	if s.probe != nil && s.probe.Result(ctx).Probe.OrgUnresolved() {
		// No org has that name: no credential, login or pull token of it can help.
		return []doctor.Result{unresolvedOrg(host, image, imgOrg, groups)}
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

	// The credential get serves first: workload identity, pull token, session.
	var credWho, credOrg string
	switch {
	case d.Settings.Identity != "":
		credWho, credOrg = "workload identity "+d.Settings.Identity, rootID(d.Settings.Identity)
	default:
		if pt, err := token.NewPullTokens(d, nil).Stored(ctx, host); err == nil {
			credWho, credOrg = "pull token "+pt.Identity, rootID(pt.Identity)
		}
	}
	if credWho != "" {
		named := nameOf(credOrg)
		switch {
		case imgOrgIs(credOrg):
			return []doctor.Result{{Status: doctor.OK, Saw: fmt.Sprintf("%s belongs to org %s, the image's org", credWho, named)}}
		case named != credOrg: // its org has a name, and it is not the image's
			return []doctor.Result{{Status: doctor.Fail,
				Saw: fmt.Sprintf("%s belongs to org %s, but the image %s is in org %q: the registry refuses it (403 Forbidden)", credWho, named, image, imgOrg),
				Fix: fmt.Sprintf("docker-credential-cgr pull-token create --parent %s --save   # a pull token of the image's org (you must be a member)", imgOrg)}}
		default:
			return []doctor.Result{{Status: doctor.Skip,
				Saw: fmt.Sprintf("%s belongs to org %s; without a login its name cannot be looked up to compare with the image's org %q", credWho, credOrg, imgOrg)}}
		}
	}
	if s.info == nil {
		return nil // anonymous: the image check explains
	}
	if groupsErr != nil {
		return []doctor.Result{fixResult(groupsErr, "cannot list the orgs of "+who(s.info), relogin)}
	}
	var mine []string
	for _, g := range groups {
		if strings.EqualFold(g.Name, imgOrg) {
			return []doctor.Result{{Status: doctor.OK, Saw: fmt.Sprintf("%s is a member of org %s, the image's org", who(s.info), nameOf(g.ID))}}
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
	return []doctor.Result{{Status: doctor.Fail,
		Saw: fmt.Sprintf("you are logged in as %s, a member of %s, but the image %s is in org %q: the registry refuses the token (403 Forbidden)", who(s.info), orgs, image, imgOrg),
		Fix: fmt.Sprintf("%s --org %s   # as an account that is a member of %s (or ask its admin to add you)", relogin, imgOrg, imgOrg)}}
}

// unresolvedOrg is the image org row when the registry cannot resolve the image's org: the
// image name is wrong. It names the login's orgs when they are known.
func unresolvedOrg(host, image, imgOrg string, groups []token.Group) doctor.Result {
	var names []string
	for _, g := range groups {
		if !strings.Contains(g.ID, "/") && g.Name != "" {
			names = append(names, fmt.Sprintf("%q", g.Name))
		}
	}
	sort.Strings(names)
	fix := doctor.OrgFix
	if len(names) > 0 {
		fix += "; your orgs: " + strings.Join(names, ", ")
	}
	return doctor.Result{Status: doctor.Fail,
		Saw: fmt.Sprintf("the image %s names org %q, which does not exist at %s (the registry cannot resolve it): the image name or the org's spelling is wrong", image, imgOrg, host),
		Fix: fix}
}

// orgGroups lists the orgs the login may act in (the platform API), once per doctor run;
// nil without a login. Call it after deps.
func (s *tokenState) orgGroups(ctx context.Context) ([]token.Group, error) {
	if s.info == nil {
		return nil, nil
	}
	s.groupsOnce.Do(func() {
		s.groups, s.groupsErr = token.NewAPI(s.d, s.sess).Groups(ctx)
	})
	return s.groups, s.groupsErr
}

// orgName names an org id for the --image check ("" when there is no login or the login's
// orgs do not include it), through the same store and session as the other token checks:
// it never starts a login.
func (s *tokenState) orgName(ctx context.Context, id string) string {
	if _, err := s.deps(ctx); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	groups, _ := s.orgGroups(ctx)
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

// rootID is the org an identity id lives in: its first 40-hex segment.
func rootID(id string) string {
	root, _, _ := strings.Cut(id, "/")
	return root
}

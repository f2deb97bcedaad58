// Package emulator serves cgr.dev, its issuer and the platform API on
// loopback, strictly as ../shared/PROTOCOL.md describes them, for tests and
// the demo.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-containerregistry/pkg/registry"
	"google.golang.org/grpc"
)

// Audience is the registry audience (and token-auth service) the emulator
// serves, as production does.
const Audience = "cgr.dev"

// PullTokenIssuer is the issuer of pull-token JWTs.
const PullTokenIssuer = "https://pulltoken.issuer.chainguard.dev"

// Options configure an Emulator; zero values take the defaults.
type Options struct {
	TokenTTL         time.Duration // Chainguard tokens; default 1h
	RefreshTTL       time.Duration // refresh tokens; default 30 days
	RegistryTokenTTL time.Duration // registry bearer tokens; default 5m
	DeviceInterval   time.Duration // device flow poll interval; default 1s
	// DeviceFlow serves an RFC 8628 device flow (/oauth/device/code, /oauth/token, /activate)
	// and names it in discovery. Off by default, as on the real issuer, whose discovery names
	// no device endpoint (PROTOCOL.md 4.2).
	DeviceFlow bool
	Clock      *Clock // nil: a new Clock at time.Now()
}

// Org is an organization (a root identity).
type Org struct{ ID, Name string }

// User is a human account; ID is the subject of its tokens.
type User struct {
	ID, Email string
	Orgs      []Org
}

// Fault switches, set with SetFault.
type Fault struct {
	IssuerDown   bool          // issuer listener answers nothing: connections are accepted and held (black hole) until the client gives up
	IssuerDelay  time.Duration // every issuer answer waits this long
	IssuerStatus int           // non-zero: every issuer answer is this HTTP status with the gRPC body (503 → code 14)
	APIStatus    int           // non-zero: every API answer is this HTTP status with the gRPC body
}

type orgState struct {
	Org
	entitled bool
	idp      string // id (a UIDP) of the org's own identity provider; "" when it has none
	// maxPullTTL caps the lifetime of the org's pull tokens (its plan); 0: 8760h.
	maxPullTTL time.Duration
}

type userState struct {
	id, email string
	orgs      []string // org ids
}

type identity struct {
	ID, Parent, Name, Description string
	Static                        *staticIdentity
	Claim                         *claimMatch
	Roles                         map[string]bool // role ids bound
	Bindings                      []string
	Created                       time.Time
}

type staticIdentity struct {
	Issuer, Subject, IssuerKeys string
	Expiration                  time.Time
	Audiences                   []string // audiences a token may carry; empty: the issuer URL
	keys                        jose.JSONWebKeySet
}

type claimMatch struct{ Issuer, Subject, Audience string }

type role struct {
	ID, Name, Description string
	Capabilities          []string
}

type refreshState struct {
	sub, email string
	exp        time.Time
	used       bool
	revoked    bool
}

type deviceState struct {
	deviceCode, userCode string
	clientID             string
	created              time.Time
	lastPoll             time.Time
	interval             time.Duration
	approvedBy           string // user id
	denied               bool
	done                 bool
}

// Emulator is cgr.dev, its issuer and the platform API, on three loopback
// listeners.
type Emulator struct {
	clock       *Clock
	issuerKey   *signingKey
	registryKey *signingKey
	oidcKey     *signingKey

	registryURL, issuerURL, apiURL string
	servers                        []*http.Server
	grpcs                          []*grpc.Server
	ggcr                           http.Handler
	closing                        chan struct{}
	closeOnce                      sync.Once
	wg                             sync.WaitGroup

	mu             sync.Mutex
	tokenTTL       time.Duration
	refreshTTL     time.Duration
	registryTTL    time.Duration
	deviceInterval time.Duration
	deviceFlow     bool
	orgs           map[string]*orgState // by id
	orgByName      map[string]string    // name → id
	users          map[string]*userState
	defaultOrg     Org
	defaultUser    string
	browserUser    string
	identities     map[string]*identity
	roles          []role
	devices        map[string]*deviceState   // by device code
	userCodes      map[string]string         // user code → device code
	headless       map[string]*headlessState // by headless code
	oauthVisits    []url.Values
	orgChecks      []string // the names asked at /orgcheck
	refresh        map[string]*refreshState
	repos          map[string]bool
	counts         map[string]int
	fault          Fault
	held           map[net.Conn]bool
	onRefresh      func()
	calls          recorder
}

// OnRefresh sets f to run at the worst moment of every refresh: after the issuer has spent the
// old refresh token and minted the new one, before it sends the answer (f == nil: nothing).
// Tests kill the helper there.
func (e *Emulator) OnRefresh(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onRefresh = f
}

// Start generates keys, opens the three listeners, creates the default org
// and user and seeds the public and private images.
func Start(opts Options) (*Emulator, error) {
	e := &Emulator{
		clock:          opts.Clock,
		tokenTTL:       orDefault(opts.TokenTTL, time.Hour),
		refreshTTL:     orDefault(opts.RefreshTTL, 30*24*time.Hour),
		registryTTL:    orDefault(opts.RegistryTokenTTL, 5*time.Minute),
		deviceInterval: orDefault(opts.DeviceInterval, time.Second),
		deviceFlow:     opts.DeviceFlow,
		orgs:           map[string]*orgState{},
		orgByName:      map[string]string{},
		users:          map[string]*userState{},
		identities:     map[string]*identity{},
		devices:        map[string]*deviceState{},
		userCodes:      map[string]string{},
		headless:       map[string]*headlessState{},
		refresh:        map[string]*refreshState{},
		repos:          map[string]bool{},
		counts:         map[string]int{},
		held:           map[net.Conn]bool{},
		closing:        make(chan struct{}),
	}
	if e.clock == nil {
		e.clock = NewClock(time.Now())
	}
	var err error
	for _, k := range []**signingKey{&e.issuerKey, &e.registryKey, &e.oidcKey} {
		if *k, err = newSigningKey(); err != nil {
			return nil, err
		}
	}
	e.roles = []role{
		{ID: randHex(20), Name: "registry.pull", Description: "Pull images from the registry", Capabilities: []string{"registry.pull"}},
		{ID: randHex(20), Name: "registry.push", Description: "Push and pull images", Capabilities: []string{"registry.pull", "registry.push"}},
		{ID: randHex(20), Name: "viewer", Description: "Read-only access", Capabilities: []string{"groups.list", "identity.list", "roles.list", "registry.pull"}},
	}
	e.ggcr = registry.New(registry.Logger(log.New(io.Discard, "", 0)))

	issuer, ig, err := e.issuerHandler()
	if err != nil {
		return nil, err
	}
	api, ag, err := e.apiHandler()
	if err != nil {
		return nil, err
	}
	e.grpcs = []*grpc.Server{ig, ag}
	// Plain HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) on the same port: the
	// helper speaks REST over HTTP/1.1, the SDK's gRPC clients speak HTTP/2 to http:// URLs.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	handlers := []struct {
		url *string
		h   http.Handler
	}{
		{&e.registryURL, e.registryHandler()},
		{&e.issuerURL, issuer},
		{&e.apiURL, api},
	}
	for _, hh := range handlers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("listen: %w", err)
		}
		*hh.url = "http://" + ln.Addr().String()
		srv := &http.Server{Handler: e.dated(hh.h), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0), Protocols: &protocols}
		e.servers = append(e.servers, srv)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_ = srv.Serve(ln)
		}()
	}

	if err := e.seed("chainguard/static:latest", "chainguard static"); err != nil {
		e.Close()
		return nil, err
	}
	org := e.AddOrg("acme.example")
	e.mu.Lock()
	e.defaultOrg = org
	e.mu.Unlock()
	u := e.AddUser("user@acme.example", org)
	e.mu.Lock()
	e.defaultUser = u.ID
	e.browserUser = u.ID
	e.mu.Unlock()
	return e, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops every listener and drops held connections.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() {
		close(e.closing)
		e.mu.Lock()
		for c := range e.held {
			_ = c.Close()
		}
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range e.servers {
			if err := s.Shutdown(ctx); err != nil {
				_ = s.Close()
			}
		}
		for _, g := range e.grpcs {
			g.Stop()
		}
		e.wg.Wait()
	})
}

// RegistryHost is "127.0.0.1:PORT" (plain http).
func (e *Emulator) RegistryHost() string { return strings.TrimPrefix(e.registryURL, "http://") }

// IssuerURL is "http://127.0.0.1:PORT".
func (e *Emulator) IssuerURL() string { return e.issuerURL }

// APIURL is "http://127.0.0.1:PORT".
func (e *Emulator) APIURL() string { return e.apiURL }

// OIDCIssuerURL is the external OIDC provider for workload identities, served
// on the issuer listener under /oidc.
func (e *Emulator) OIDCIssuerURL() string { return e.issuerURL + "/oidc" }

// Env is the helper's settings for this emulator.
func (e *Emulator) Env() []string {
	return []string{
		"CGR_REGISTRY=" + e.RegistryHost(),
		"CGR_ISSUER=" + e.IssuerURL(),
		"CGR_API=" + e.APIURL(),
	}
}

// Clock drives every expiry check and Date header.
func (e *Emulator) Clock() *Clock { return e.clock }

func (e *Emulator) now() time.Time { return e.clock.Now() }

// SetTokenTTL sets the lifetime of Chainguard tokens minted from now on.
func (e *Emulator) SetTokenTTL(d time.Duration) { e.mu.Lock(); e.tokenTTL = d; e.mu.Unlock() }

// SetRefreshTTL sets the lifetime of refresh tokens minted from now on.
func (e *Emulator) SetRefreshTTL(d time.Duration) { e.mu.Lock(); e.refreshTTL = d; e.mu.Unlock() }

// SetRegistryTokenTTL sets the lifetime of registry bearer tokens minted from now on.
func (e *Emulator) SetRegistryTokenTTL(d time.Duration) {
	e.mu.Lock()
	e.registryTTL = d
	e.mu.Unlock()
}

// SetDeviceInterval sets the device-flow poll interval for new device codes.
func (e *Emulator) SetDeviceInterval(d time.Duration) {
	e.mu.Lock()
	e.deviceInterval = d
	e.mu.Unlock()
}

// Org is the default organization.
func (e *Emulator) Org() Org { e.mu.Lock(); defer e.mu.Unlock(); return e.defaultOrg }

// User is the default user: a member of Org() and the browser user at Start.
func (e *Emulator) User() User { e.mu.Lock(); defer e.mu.Unlock(); return e.userLocked(e.defaultUser) }

func (e *Emulator) userLocked(id string) User {
	u, ok := e.users[id]
	if !ok {
		return User{}
	}
	out := User{ID: u.id, Email: u.email}
	for _, oid := range u.orgs {
		if o, ok := e.orgs[oid]; ok {
			out.Orgs = append(out.Orgs, o.Org)
		}
	}
	return out
}

// AddOrg creates an entitled organization with the image <name>/app:latest.
func (e *Emulator) AddOrg(name string) Org {
	org := Org{ID: randHex(20), Name: name}
	e.mu.Lock()
	e.orgs[org.ID] = &orgState{Org: org, entitled: true}
	e.orgByName[name] = org.ID
	e.mu.Unlock()
	if err := e.seed(name+"/app:latest", name+" app"); err != nil {
		panic(fmt.Sprintf("emulator: seed %s/app: %v", name, err))
	}
	return org
}

// AddUser creates a user, member of orgs.
func (e *Emulator) AddUser(email string, orgs ...Org) User {
	u := &userState{id: randHex(20), email: email}
	for _, o := range orgs {
		u.orgs = append(u.orgs, o.ID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[u.id] = u
	return e.userLocked(u.id)
}

// SetBrowserUser sets who the browser is logged in as. A user the emulator
// does not know (e.g. User{}) makes logins fail with status_code=404.
func (e *Emulator) SetBrowserUser(u User) { e.mu.Lock(); e.browserUser = u.ID; e.mu.Unlock() }

// SetEntitled grants or withdraws an org's registry entitlement.
func (e *Emulator) SetEntitled(org Org, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, found := e.orgs[org.ID]; found {
		o.entitled = ok
	}
}

// SetOrgPlan gives org a plan and with it the longest pull token it may create: "starter"
// 720h, "team" 168h, anything else 8760h.
func (e *Emulator) SetOrgPlan(org Org, plan string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, ok := e.orgs[org.ID]; ok {
		switch plan {
		case "starter":
			o.maxPullTTL = 720 * time.Hour
		case "team":
			o.maxPullTTL = 168 * time.Hour
		default:
			o.maxPullTTL = 0
		}
	}
}

// AddAssumableIdentity creates an identity under org that an OIDC token with
// the given issuer, subject and audience (default: the issuer host) may
// assume, bound to registry.pull. It returns the identity id.
func (e *Emulator) AddAssumableIdentity(org Org, issuer, subject, audience string) string {
	if audience == "" {
		u, _ := url.Parse(e.issuerURL)
		audience = u.Host
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	id := &identity{
		ID: org.ID + "/" + randHex(8), Parent: org.ID, Name: "assumable",
		Claim: &claimMatch{Issuer: issuer, Subject: subject, Audience: audience},
		Roles: map[string]bool{e.roleByName("registry.pull").ID: true},
	}
	e.identities[id.ID] = id
	return id.ID
}

func (e *Emulator) roleByName(name string) role {
	for _, r := range e.roles {
		if r.Name == name {
			return r
		}
	}
	return role{}
}

// DeleteIdentity removes an identity (as the console would).
func (e *Emulator) DeleteIdentity(id string) { e.mu.Lock(); delete(e.identities, id); e.mu.Unlock() }

// Identity reports whether an identity exists.
func (e *Emulator) Identity(id string) (exists bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.identities[id]
	return ok
}

// Identities lists the ids of the identities under an org, sorted.
func (e *Emulator) Identities(org Org) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, i := range e.identities {
		if i.Parent == org.ID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// PublicImage is "<registry host>/chainguard/static:latest".
func (e *Emulator) PublicImage() string { return e.RegistryHost() + "/chainguard/static:latest" }

// PrivateImage is "<registry host>/<org name>/app:latest".
func (e *Emulator) PrivateImage() string {
	return e.RegistryHost() + "/" + e.Org().Name + "/app:latest"
}

// Count is how many times the named endpoint was hit.
func (e *Emulator) Count(name string) int { e.mu.Lock(); defer e.mu.Unlock(); return e.counts[name] }

// ResetCounts zeroes every counter.
func (e *Emulator) ResetCounts() { e.mu.Lock(); e.counts = map[string]int{}; e.mu.Unlock() }

func (e *Emulator) hit(name string) { e.mu.Lock(); e.counts[name]++; e.mu.Unlock() }

// SetFault replaces the fault switches.
func (e *Emulator) SetFault(f Fault) { e.mu.Lock(); e.fault = f; e.mu.Unlock() }

func (e *Emulator) faults() Fault { e.mu.Lock(); defer e.mu.Unlock(); return e.fault }

// RevokeRefreshTokens makes every refresh token issued so far unusable (401).
func (e *Emulator) RevokeRefreshTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.refresh {
		r.revoked = true
	}
}

// dated stamps every answer with the emulator clock's Date.
func (e *Emulator) dated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", e.now().UTC().Format(http.TimeFormat))
		h.ServeHTTP(w, r)
	})
}

// blackHole holds the connection open, answering nothing, until the client
// hangs up or the emulator closes.
func (e *Emulator) blackHole(ctx context.Context, w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok { // HTTP/2: hold the stream instead
		select {
		case <-ctx.Done():
		case <-e.closing:
		}
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	e.mu.Lock()
	select {
	case <-e.closing:
		e.mu.Unlock()
		_ = conn.Close()
		return
	default:
	}
	e.held[conn] = true
	e.mu.Unlock()
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		e.mu.Lock()
		delete(e.held, conn)
		e.mu.Unlock()
		_ = conn.Close()
	}()
}

var errClosing = errors.New("emulator closing")

// wait sleeps d unless the request or the emulator ends first.
func (e *Emulator) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.closing:
		return errClosing
	}
}

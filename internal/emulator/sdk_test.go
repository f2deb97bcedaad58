package emulator

// Conformance: Chainguard's own SDK (chainguard.dev/sdk, what chainctl runs) as the client of
// the emulator. Each case fails when the emulator answers otherwise than the SDK expects of the
// real issuer and API: wire shapes, gRPC and REST, error codes and the retries they cause,
// the browser, org and headless logins, the IAM calls of a pull token.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	delegate "chainguard.dev/go-grpc-kit/pkg/options"
	"chainguard.dev/sdk/auth"
	"chainguard.dev/sdk/auth/headless"
	"chainguard.dev/sdk/auth/login"
	authv1 "chainguard.dev/sdk/proto/platform/auth/v1"
	commonv1 "chainguard.dev/sdk/proto/platform/common/v1"
	iamv1 "chainguard.dev/sdk/proto/platform/iam/v1"
	oidcv1 "chainguard.dev/sdk/proto/platform/oidc/v1"
	"chainguard.dev/sdk/sts"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestSDKConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"sts/grpc exchange, refresh rotation, reuse rejected", func(t *testing.T) { sdkExchangeAndRefresh(t, false) }},
		{"sts/http1-downgrade exchange, refresh rotation, reuse rejected", func(t *testing.T) { sdkExchangeAndRefresh(t, true) }},
		{"sts/grpc assumable identity: claim match, unknown, mismatch", func(t *testing.T) { sdkAssume(t, false) }},
		{"sts/http1-downgrade assumable identity: claim match, unknown, mismatch", func(t *testing.T) { sdkAssume(t, true) }},
		{"sts/grpc retries: Unavailable only on exchange; Internal on refresh", func(t *testing.T) { sdkRetries(t, false) }},
		{"sts/http1-downgrade retries: from the gateway's error body", func(t *testing.T) { sdkRetries(t, true) }},
		{"login.Login with a client id", sdkLoginClientID},
		{"login.Login with an org (orgcheck, idp_id) and with an IdP id", sdkLoginOrg},
		{"headless code: BuildHeadlessURL, GetHeadlessSession over gRPC, DecryptIDToken, STS", sdkHeadless},
		{"headless code over REST: 404 until approved, then the session once; lapse; deny", sdkHeadlessREST},
		{"iam/grpc pull token: roles, create static identity, bind, list, pull, delete, groups", sdkIAM},
		{"iam/grpc claim-match identity assumed through sts", sdkIAMClaimMatch},
		{"auth/grpc Validate (who am I)", sdkWhoAmI},
	}
	passed := 0
	for _, c := range cases {
		if t.Run(c.name, c.run) {
			passed++
		}
	}
	t.Logf("SDK conformance: %d cases, %d passed, %d failed", len(cases), passed, len(cases)-passed)
}

func sdkCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sdkExchange is the SDK's exchange, on gRPC or on its HTTP/1 downgrade.
func sdkExchange(ctx context.Context, e *Emulator, http1 bool, aud, subject string, opts ...sts.ExchangerOption) (sts.TokenPair, error) {
	if http1 {
		opts = append(opts, sts.WithHTTP1Downgrade())
	}
	return sts.ExchangePair(ctx, e.IssuerURL(), aud, subject, opts...)
}

func sdkRefresh(ctx context.Context, e *Emulator, http1 bool, aud, rt string) (string, string, error) {
	if http1 {
		return sts.NewHTTP1DowngradeExchanger(e.IssuerURL(), aud).Refresh(ctx, rt)
	}
	return sts.New(e.IssuerURL(), aud).Refresh(ctx, rt)
}

func wantVia(t *testing.T, e *Emulator, method string, http1 bool) {
	t.Helper()
	want := "grpc"
	if http1 {
		want = "rest"
	}
	calls := e.Calls(method)
	if len(calls) == 0 {
		t.Fatalf("no %s recorded", method)
	}
	if got := calls[len(calls)-1].Via; got != want {
		t.Errorf("%s came via %q, want %q", method, got, want)
	}
}

// claimsOf reads a Chainguard token the emulator minted, checking its signature.
func claimsOf(t *testing.T, e *Emulator, tok string) *inClaims {
	t.Helper()
	c, rerr := e.verifyChainguard(tok, "")
	if rerr != nil {
		t.Fatalf("token: %v", rerr)
	}
	return c
}

func sdkExchangeAndRefresh(t *testing.T, http1 bool) {
	ctx := sdkCtx(t)
	e := start(t, Options{TokenTTL: 10 * time.Minute})
	subject := e.MintToken(e.User().ID, Audience)
	pair, err := sdkExchange(ctx, e, http1, Audience+","+e.APIURL(), subject)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	c := claimsOf(t, e, pair.AccessToken)
	if c.Sub != e.User().ID || !c.hasAud(Audience) || !c.hasAud(e.APIURL()) {
		t.Errorf("exchanged token: sub %q aud %v", c.Sub, c.Aud)
	}
	if !pair.Expiry.Equal(c.Exp.Time()) || pair.RefreshToken == "" {
		t.Errorf("expiry %v (token's exp %v), refresh token given %v", pair.Expiry, c.Exp.Time(), pair.RefreshToken != "")
	}
	wantVia(t, e, oidcv1.SecurityTokenService_Exchange_FullMethodName, http1)
	got := e.Calls(oidcv1.SecurityTokenService_Exchange_FullMethodName)[0].Request.(*oidcv1.ExchangeRequest)
	if strings.Join(got.GetAud(), ",") != Audience+","+e.APIURL() {
		t.Errorf("decoded aud %v", got.GetAud())
	}

	tok, rt, err := sdkRefresh(ctx, e, http1, Audience, pair.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if claimsOf(t, e, tok).Sub != e.User().ID || rt == "" || rt == pair.RefreshToken {
		t.Errorf("refresh: rotated %v", rt != pair.RefreshToken)
	}
	wantVia(t, e, oidcv1.SecurityTokenService_ExchangeRefreshToken_FullMethodName, http1)
	if _, _, err := sdkRefresh(ctx, e, http1, Audience, pair.RefreshToken); status.Code(err) != codes.Unauthenticated && !strings.Contains(errString(err), "401") {
		t.Errorf("reuse of a spent refresh token: %v, want Unauthenticated", err)
	}
	// No refresh token leaves an exchange for a workload's token.
	if n := e.Count("sts/exchange"); n != 1 {
		t.Errorf("sts/exchange count %d", n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func sdkAssume(t *testing.T, http1 bool) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	aud := strings.TrimPrefix(e.IssuerURL(), "http://")
	id := e.AddAssumableIdentity(e.Org(), e.OIDCIssuerURL(), "repo:acme/app", "")
	pair, err := sdkExchange(ctx, e, http1, Audience, e.MintOIDCToken("repo:acme/app", aud, time.Hour), sts.WithIdentity(id))
	if err != nil {
		t.Fatalf("assume: %v", err)
	}
	if c := claimsOf(t, e, pair.AccessToken); c.Sub != id || pair.RefreshToken != "" {
		t.Errorf("assumed token sub %q, refresh token %v", c.Sub, pair.RefreshToken != "")
	}
	req := e.Calls(oidcv1.SecurityTokenService_Exchange_FullMethodName)[0].Request.(*oidcv1.ExchangeRequest)
	if req.GetIdentity() != id {
		t.Errorf("decoded identity %q", req.GetIdentity())
	}
	_, err = sdkExchange(ctx, e, http1, Audience, e.MintOIDCToken("repo:acme/app", aud, time.Hour), sts.WithIdentity(e.Org().ID+"/0123456789abcdef"))
	if status.Code(err) != codes.NotFound && !strings.Contains(errString(err), "404") {
		t.Errorf("unknown identity: %v, want NotFound", err)
	}
	_, err = sdkExchange(ctx, e, http1, Audience, e.MintOIDCToken("repo:other", aud, time.Hour), sts.WithIdentity(id))
	if status.Code(err) != codes.PermissionDenied && !strings.Contains(errString(err), "403") {
		t.Errorf("subject mismatch: %v, want PermissionDenied", err)
	}
}

func sdkRetries(t *testing.T, http1 bool) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	subject := e.MintToken(e.User().ID, Audience)
	rt := e.MintRefreshToken(e.User().ID)
	for _, c := range []struct {
		status         int
		exchange, rfsh int // attempts the SDK makes
	}{
		{503, 3, 3}, // Unavailable: both retry
		{500, 1, 3}, // Internal (code 13 in the body): only the refresh retries
		{403, 1, 1},
	} {
		e.SetFault(Fault{IssuerStatus: c.status})
		e.ResetCounts()
		if _, err := sdkExchange(ctx, e, http1, Audience, subject); err == nil {
			t.Fatalf("%d: exchange succeeded", c.status)
		}
		if _, _, err := sdkRefresh(ctx, e, http1, Audience, rt); err == nil {
			t.Fatalf("%d: refresh succeeded", c.status)
		}
		if got := e.Count("sts/exchange"); got != c.exchange {
			t.Errorf("fault %d: the SDK's exchange made %d attempts, want %d", c.status, got, c.exchange)
		}
		if got := e.Count("sts/exchange_refresh_token"); got != c.rfsh {
			t.Errorf("fault %d: the SDK's refresh made %d attempts, want %d", c.status, got, c.rfsh)
		}
	}
	e.SetFault(Fault{})
	if _, _, err := sdkRefresh(ctx, e, http1, Audience, rt); err != nil {
		t.Errorf("refresh after the faults: %v", err)
	}
}

// sdkLogin runs the SDK's login.Login with its browser replaced by the emulator's: the SDK
// prints the URL (WithSkipBrowser) and Browse opens it.
func sdkLogin(t *testing.T, e *Emulator, opts ...login.Option) (tok, rt string, err error) {
	t.Helper()
	ctx := sdkCtx(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	browsed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "Please open a browser to "); ok {
				browsed <- e.Browse(ctx, u)
				io.Copy(io.Discard, pr)
				return
			}
		}
		browsed <- errors.New("login.Login printed no URL")
	}()
	opts = append([]login.Option{login.WithIssuer(e.IssuerURL()), login.WithSkipBrowser(), login.WithMessageWriter(pw)}, opts...)
	tok, rt, err = login.Login(ctx, opts...)
	if err == nil {
		if berr := <-browsed; berr != nil {
			t.Errorf("browse: %v", berr)
		}
	}
	return tok, rt, err
}

func sdkLoginClientID(t *testing.T) {
	e := start(t, Options{})
	tok, rt, err := sdkLogin(t, e, login.WithClientID(browserClientID), login.WithAudience([]string{Audience}),
		login.WithCreateRefreshToken(), login.WithSkipRegistration())
	if err != nil {
		t.Fatalf("login.Login: %v", err)
	}
	c := claimsOf(t, e, tok)
	if c.Sub != e.User().ID || !c.hasAud(Audience) || rt == "" {
		t.Errorf("token sub %q aud %v, refresh token %v", c.Sub, c.Aud, rt != "")
	}
	email, verified, err := auth.ExtractEmail(tok)
	if err != nil || email != e.User().Email || !verified {
		t.Errorf("email %q verified %v (%v)", email, verified, err)
	}
	v := e.OAuthVisits()
	if len(v) != 1 || v[0].Get("client_id") != browserClientID || v[0].Has("idp_id") {
		t.Errorf("oauth visits %v", v)
	}
	// An account the issuer does not know: the SDK's "account not found".
	e.SetBrowserUser(User{})
	if _, _, err := sdkLogin(t, e, login.WithClientID(browserClientID)); err == nil || !strings.Contains(err.Error(), "account not found") {
		t.Errorf("unknown account: %v", err)
	}
}

func sdkLoginOrg(t *testing.T) {
	e := start(t, Options{})
	// No identity provider of its own (the default): the SDK's org check refuses before any browser.
	_, _, err := sdkLogin(t, e, login.WithOrgName(e.Org().Name))
	if err == nil || !strings.Contains(err.Error(), "does not have an IDP configured") || e.Count("oauth") != 0 {
		t.Errorf("org without an IdP: %v, oauth %d", err, e.Count("oauth"))
	}
	if _, _, err := sdkLogin(t, e, login.WithOrgName("nope.example")); err == nil {
		t.Error("unknown org: login succeeded")
	}
	if e.Count("orgcheck") != 2 {
		t.Errorf("orgcheck count %d", e.Count("orgcheck"))
	}

	idp := e.SetOrgIDP(e.Org(), true)
	tok, _, err := sdkLogin(t, e, login.WithOrgName(e.Org().Name), login.WithAudience([]string{Audience}), login.WithCreateRefreshToken())
	if err != nil {
		t.Fatalf("org login: %v", err)
	}
	if c := claimsOf(t, e, tok); c.Sub != e.User().ID {
		t.Errorf("org login as %q", c.Sub)
	}
	v := e.OAuthVisits()
	if len(v) != 1 || v[0].Get("idp_id") != e.Org().Name || v[0].Has("client_id") {
		t.Errorf("oauth visit of the org login: %v", v)
	}
	// An identity provider's id goes straight to idp_id, no org check.
	e.ResetCounts()
	if _, _, err := sdkLogin(t, e, login.WithIdentityProvider(idp), login.WithAudience([]string{Audience})); err != nil {
		t.Errorf("IdP id login: %v", err)
	}
	if e.Count("orgcheck") != 0 || e.Count("oauth") != 1 {
		t.Errorf("IdP id login: orgcheck %d oauth %d", e.Count("orgcheck"), e.Count("oauth"))
	}
	// A person outside the org cannot sign in through its IdP.
	e.SetBrowserUser(e.AddUser("stranger@else.example"))
	if _, _, err := sdkLogin(t, e, login.WithOrgName(e.Org().Name)); err == nil {
		t.Error("a non-member signed in through the org's IdP")
	}
}

// sdkConn is a gRPC connection made as the SDK makes them (go-grpc-kit's options for the URL).
func sdkConn(t *testing.T, rawURL, bearerTok string) *grpc.ClientConn {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	target, opts := delegate.GRPCOptions(*u)
	if bearerTok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.NewFromToken(context.Background(), "Bearer "+bearerTok, false)))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func sdkHeadless(t *testing.T) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	pk, err := headless.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	code := headless.NewCode(pk.PublicKey())
	u, err := login.BuildHeadlessURL(login.WithIssuer(e.IssuerURL()), login.WithHeadlessCode(string(code)))
	if err != nil {
		t.Fatal(err)
	}
	client := authv1.NewAuthClient(sdkConn(t, e.IssuerURL(), ""))
	if _, err := client.GetHeadlessSession(ctx, &authv1.GetHeadlessSessionRequest{Code: string(code)}); status.Code(err) != codes.NotFound {
		t.Fatalf("poll before sign-in: %v, want NotFound", err)
	}
	if err := e.Browse(ctx, u); err != nil {
		t.Fatalf("browse %s: %v", u, err)
	}
	sess, err := client.GetHeadlessSession(ctx, &authv1.GetHeadlessSessionRequest{Code: string(code)})
	if err != nil {
		t.Fatalf("poll after sign-in: %v", err)
	}
	idtok, err := headless.DecryptIDToken(sess, pk)
	if err != nil {
		t.Fatalf("DecryptIDToken: %v", err)
	}
	if email, verified, _ := auth.ExtractEmail(string(idtok)); email != e.User().Email || !verified {
		t.Errorf("id token email %q verified %v", email, verified)
	}
	if _, err := client.GetHeadlessSession(ctx, &authv1.GetHeadlessSessionRequest{Code: string(code)}); status.Code(err) != codes.NotFound {
		t.Errorf("second fetch of the session: %v, want NotFound (handed out once)", err)
	}
	pair, err := sts.ExchangePair(ctx, e.IssuerURL(), Audience, string(idtok))
	if err != nil {
		t.Fatalf("exchange of the headless id token: %v", err)
	}
	if c := claimsOf(t, e, pair.AccessToken); c.Sub != e.User().ID || !c.hasAud(Audience) || pair.RefreshToken == "" {
		t.Errorf("headless login token sub %q aud %v refresh %v", c.Sub, c.Aud, pair.RefreshToken != "")
	}
	if e.Count("sts/headless_sessions") != 3 || e.Count("oauth") != 1 {
		t.Errorf("counts: headless_sessions %d oauth %d", e.Count("sts/headless_sessions"), e.Count("oauth"))
	}
	if v := e.OAuthVisits(); len(v) != 1 || v[0].Get("headless_code") != string(code) || v[0].Has("client_id") || v[0].Has("idp_id") {
		t.Errorf("oauth visit %v", v)
	}

	// With an org: idp_id on the headless URL, checked as in the browser flow.
	e.SetOrgIDP(e.Org(), true)
	pk2, _ := headless.GenerateKeyPair()
	code2 := headless.NewCode(pk2.PublicKey())
	u2, err := login.BuildHeadlessURL(login.WithIssuer(e.IssuerURL()), login.WithHeadlessCode(string(code2)), login.WithOrgName(e.Org().Name))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Browse(ctx, u2); err != nil {
		t.Fatalf("browse the org's headless URL: %v", err)
	}
	if _, err := client.GetHeadlessSession(ctx, &authv1.GetHeadlessSessionRequest{Code: string(code2)}); err != nil {
		t.Errorf("org headless session: %v", err)
	}
	if err := e.Browse(ctx, e.IssuerURL()+"/oauth?headless_code=not-a-key"); err == nil {
		t.Error("a garbage headless code was accepted")
	}
}

// headlessREST polls as a plain-HTTP client would: GET /sts/headless_sessions?code=.
func headlessREST(t *testing.T, e *Emulator, code headless.Code) resp {
	return do(t, "GET", e.IssuerURL()+"/sts/headless_sessions?code="+url.QueryEscape(string(code)), "", "", nil)
}

func sdkHeadlessREST(t *testing.T) {
	e := start(t, Options{})
	pk, _ := headless.GenerateKeyPair()
	code := headless.NewCode(pk.PublicKey())
	if r := headlessREST(t, e, code); r.status != 404 || r.json(t)["code"] != float64(codeNotFound) {
		t.Fatalf("before approval: %d %s", r.status, r.body)
	}
	if err := e.ApproveHeadless(string(code)); err != nil {
		t.Fatal(err)
	}
	r := headlessREST(t, e, code)
	if r.status != 200 {
		t.Fatalf("after approval: %d %s", r.status, r.body)
	}
	var m map[string]any
	json.Unmarshal(r.body, &m)
	if _, ok := m["ecdhPublicKey"]; !ok {
		t.Errorf("answer keys %v, want lowerCamelCase ecdhPublicKey", keys2(m))
	}
	var sess authv1.HeadlessSession
	if err := protojson.Unmarshal(r.body, &sess); err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if _, err := headless.DecryptIDToken(&sess, pk); err != nil {
		t.Errorf("DecryptIDToken of the REST answer: %v", err)
	}
	if r := headlessREST(t, e, code); r.status != 404 {
		t.Errorf("second fetch: %d, want 404", r.status)
	}
	if r := headlessREST(t, e, "garbage"); r.status != 400 {
		t.Errorf("garbage code: %d, want 400", r.status)
	}

	// The code lapses 15 minutes after the issuer first saw it.
	pk2, _ := headless.GenerateKeyPair()
	late := headless.NewCode(pk2.PublicKey())
	headlessREST(t, e, late)
	e.Clock().Advance(headlessLifetime + time.Second)
	if err := e.ApproveHeadless(string(late)); err == nil {
		t.Error("a lapsed code was approved")
	}
	if r := headlessREST(t, e, late); r.status != 404 {
		t.Errorf("lapsed: %d", r.status)
	}
	// Denied: PermissionDenied once, then spent.
	pk3, _ := headless.GenerateKeyPair()
	no := headless.NewCode(pk3.PublicKey())
	if err := e.DenyHeadless(string(no)); err != nil {
		t.Fatal(err)
	}
	if r := headlessREST(t, e, no); r.status != 403 {
		t.Errorf("denied: %d %s", r.status, r.body)
	}
	if err := e.ApproveHeadless(string(no)); err == nil {
		t.Error("a denied code was approved afterwards")
	}
}

func sdkIAM(t *testing.T) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	apiTok := e.MintToken(e.User().ID, e.APIURL())
	c, err := iamv1.NewClients(ctx, e.APIURL(), "Bearer "+apiTok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	org := e.Org()

	groups, err := c.Groups().List(ctx, &iamv1.GroupFilter{})
	if err != nil || len(groups.GetItems()) != 1 || groups.GetItems()[0].GetId() != org.ID || groups.GetItems()[0].GetName() != org.Name {
		t.Fatalf("groups: %v %v", groups, err)
	}
	roles, err := c.Roles().List(ctx, &iamv1.RoleFilter{Name: "registry.pull"})
	if err != nil || len(roles.GetItems()) != 1 {
		t.Fatalf("roles: %v %v", roles, err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, Algorithm: "RS256", Use: "sig"}}})
	sub := "pull-token-" + strings.Repeat("cd", 20)
	now := e.Clock().Now()
	id, err := c.Identities().Create(ctx, &iamv1.CreateIdentityRequest{ParentId: org.ID, Identity: &iamv1.Identity{
		Name: "ci", Description: "conformance",
		Relationship: &iamv1.Identity_Static{Static: &iamv1.Identity_StaticKeys{
			Issuer: PullTokenIssuer, Subject: sub, IssuerKeys: string(jwks), Expiration: timestamppb.New(now.Add(time.Hour)),
		}},
	}})
	if err != nil {
		t.Fatalf("create identity: %v", err)
	}
	if !strings.HasPrefix(id.GetId(), org.ID+"/") || id.GetStatic().GetSubject() != sub {
		t.Fatalf("created %v", id)
	}
	if _, err := c.RoleBindings().Create(ctx, &iamv1.CreateRoleBindingRequest{Parent: org.ID, RoleBinding: &iamv1.RoleBinding{
		Identity: id.GetId(), Role: roles.GetItems()[0].GetId(),
	}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	list, err := c.Identities().List(ctx, &iamv1.IdentityFilter{Uidp: &commonv1.UIDPFilter{ChildrenOf: org.ID}})
	if err != nil || len(list.GetItems()) != 1 || list.GetItems()[0].GetId() != id.GetId() {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := pull(t, e.PrivateImage(), basic(id.GetId(), pullTokenJWT(t, key, e.IssuerURL(), sub, now, time.Hour))); err != nil {
		t.Errorf("pull with the pull token made over gRPC: %v", err)
	}
	if _, err := c.Identities().Delete(ctx, &iamv1.DeleteIdentityRequest{Id: id.GetId()}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Identities().Delete(ctx, &iamv1.DeleteIdentityRequest{Id: id.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("delete again: %v, want NotFound", err)
	}
	// Not a member, not the API's audience.
	other := e.AddOrg("other.example")
	if _, err := c.Identities().List(ctx, &iamv1.IdentityFilter{Uidp: &commonv1.UIDPFilter{ChildrenOf: other.ID}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("list in a foreign org: %v", err)
	}
	wrong, _ := iamv1.NewClients(ctx, e.APIURL(), "Bearer "+e.MintToken(e.User().ID, Audience))
	defer wrong.Close()
	if _, err := wrong.Groups().List(ctx, &iamv1.GroupFilter{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a cgr.dev token at the API: %v", err)
	}
	for _, m := range []string{iamv1.Groups_List_FullMethodName, iamv1.Roles_List_FullMethodName, iamv1.Identities_Create_FullMethodName,
		iamv1.RoleBindings_Create_FullMethodName, iamv1.Identities_List_FullMethodName, iamv1.Identities_Delete_FullMethodName} {
		wantVia(t, e, m, false)
	}
	for _, n := range []string{"api/groups", "api/roles", "api/identities.create", "api/rolebindings.create", "api/identities.list", "api/identities.delete"} {
		if e.Count(n) == 0 {
			t.Errorf("counter %s is 0 after gRPC calls", n)
		}
	}
}

func sdkIAMClaimMatch(t *testing.T) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	c, err := iamv1.NewClients(ctx, e.APIURL(), "Bearer "+e.MintToken(e.User().ID, e.APIURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := c.Identities().Create(ctx, &iamv1.CreateIdentityRequest{ParentId: e.Org().ID, Identity: &iamv1.Identity{
		Name: "ci",
		Relationship: &iamv1.Identity_ClaimMatch_{ClaimMatch: &iamv1.Identity_ClaimMatch{
			Iss: &iamv1.Identity_ClaimMatch_Issuer{Issuer: e.OIDCIssuerURL()},
			Sub: &iamv1.Identity_ClaimMatch_Subject{Subject: "repo:acme/app"},
			Aud: &iamv1.Identity_ClaimMatch_Audience{Audience: "cgr-test"},
		}},
	}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	pair, err := sts.ExchangePair(ctx, e.IssuerURL(), Audience, e.MintOIDCToken("repo:acme/app", "cgr-test", time.Hour), sts.WithIdentity(id.GetId()))
	if err != nil || claimsOf(t, e, pair.AccessToken).Sub != id.GetId() {
		t.Fatalf("assume the new identity: %v", err)
	}
	if _, err := sts.ExchangePair(ctx, e.IssuerURL(), Audience, e.MintOIDCToken("repo:acme/app", "other", time.Hour), sts.WithIdentity(id.GetId())); status.Code(err) != codes.PermissionDenied {
		t.Errorf("audience mismatch: %v", err)
	}
	_, err = c.Identities().Create(ctx, &iamv1.CreateIdentityRequest{ParentId: e.Org().ID, Identity: &iamv1.Identity{Name: "x"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("identity without a relationship: %v", err)
	}
}

func sdkWhoAmI(t *testing.T) {
	ctx := sdkCtx(t)
	e := start(t, Options{})
	tok := e.MintToken(e.User().ID, Audience)
	who, err := authv1.NewAuthClient(sdkConn(t, e.IssuerURL(), tok)).Validate(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if who.GetSubject() != e.User().ID || who.GetEmail() != e.User().Email || who.GetIssuer() != e.IssuerURL() ||
		len(who.GetCapabilities()) != 1 || who.GetCapabilities()[0].GetGroup().GetId() != e.Org().ID {
		t.Errorf("who am I: %v", who)
	}
	// The same over REST, in protojson.
	r := do(t, "GET", e.IssuerURL()+"/auth/v1/ok", tok, "", nil)
	var rest authv1.WhoAmI
	if err := protojson.Unmarshal(r.body, &rest); r.status != 200 || err != nil || rest.GetSubject() != e.User().ID {
		t.Errorf("REST who am I: %d %v %s", r.status, err, r.body)
	}
	if _, err := authv1.NewAuthClient(sdkConn(t, e.IssuerURL(), "")).Validate(ctx, &emptypb.Empty{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v", err)
	}
}

package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	authv1 "chainguard.dev/sdk/proto/platform/auth/v1"
	iamv1 "chainguard.dev/sdk/proto/platform/iam/v1"
	oidcv1 "chainguard.dev/sdk/proto/platform/oidc/v1"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// --- STS (PROTOCOL §5) ---

// stsServer is chainguard.platform.oidc.SecurityTokenService. Through the gateway its
// requests are form bodies or queries (the bindings carry no body: a JSON body is ignored).
type stsServer struct {
	oidcv1.UnimplementedSecurityTokenServiceServer
	e *Emulator
}

func (s *stsServer) Exchange(ctx context.Context, req *oidcv1.ExchangeRequest) (*oidcv1.RawToken, error) {
	e := s.e
	e.record(ctx, oidcv1.SecurityTokenService_Exchange_FullMethodName, req)
	subject := bearerMD(ctx)
	if subject == "" {
		return nil, rpcErr(codeUnauthenticated, "missing bearer subject token")
	}
	if len(req.GetAud()) == 0 {
		return nil, rpcErr(codeInvalidArgument, "aud is required")
	}
	sub, human, rerr := e.exchange(subject, req.GetIdentity())
	if rerr != nil {
		return nil, rerr
	}
	tok, exp := e.mintToken(sub, req.GetAud())
	out := &oidcv1.RawToken{Token: tok, Expiry: timestamppb.New(exp)}
	if human {
		out.RefreshToken, _ = e.mintRefresh(sub, req.GetAud())
	}
	return out, nil
}

func (s *stsServer) ExchangeRefreshToken(ctx context.Context, req *oidcv1.ExchangeRefreshTokenRequest) (*oidcv1.TokenPair, error) {
	e := s.e
	e.record(ctx, oidcv1.SecurityTokenService_ExchangeRefreshToken_FullMethodName, req)
	rt := bearerMD(ctx)
	if rt == "" {
		return nil, rpcErr(codeUnauthenticated, "missing bearer refresh token")
	}
	if len(req.GetAud()) == 0 {
		return nil, rpcErr(codeInvalidArgument, "aud is required")
	}
	if raw, err := base64.StdEncoding.DecodeString(rt); err != nil || !json.Valid(raw) {
		return nil, rpcErr(codeUnauthenticated, "malformed refresh token")
	}
	now := e.now()
	e.mu.Lock()
	st, ok := e.refresh[rt]
	var rerr *rpcError
	switch {
	case !ok:
		rerr = rpcErr(codeUnauthenticated, "invalid refresh token")
	case st.revoked:
		rerr = rpcErr(codeUnauthenticated, "refresh token revoked")
	case st.used:
		rerr = rpcErr(codeUnauthenticated, "refresh token already used")
	case !now.Before(st.exp):
		rerr = rpcErr(codeUnauthenticated, "refresh token expired")
	default:
		if _, isUser := e.users[st.sub]; !isUser {
			rerr = rpcErr(codeNotFound, "identity not found")
		} else {
			st.used = true
		}
	}
	e.mu.Unlock()
	if rerr != nil {
		return nil, rerr
	}
	tok, exp := e.mintToken(st.sub, req.GetAud())
	nrt, rexp := e.mintRefresh(st.sub, req.GetAud())
	e.mu.Lock()
	hook := e.onRefresh
	e.mu.Unlock()
	if hook != nil {
		hook() // the old refresh token is spent and the new one minted: the worst moment to die
	}
	return &oidcv1.TokenPair{
		Token:        &oidcv1.RawToken{Token: tok, Expiry: timestamppb.New(exp)},
		RefreshToken: &oidcv1.RawToken{Token: nrt, Expiry: timestamppb.New(rexp)},
	}, nil
}

// exchange verifies a subject token (optionally assuming identityID) and
// returns the subject of the Chainguard token to mint.
func (e *Emulator) exchange(subject, identityID string) (sub string, human bool, _ *rpcError) {
	tok, c, err := parseUnverified(subject)
	if err != nil {
		return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
	}
	now := e.now()
	if identityID == "" {
		if c.Iss != e.issuerURL {
			return "", false, rpcErr(codeUnauthenticated, fmt.Sprintf("unable to verify token from issuer %q: no identity to assume", c.Iss))
		}
		vc, err := verifyWith(tok, []any{&e.issuerKey.priv.PublicKey}, now)
		if err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		e.mu.Lock()
		_, isUser := e.users[vc.Sub]
		_, isIdentity := e.identities[vc.Sub]
		e.mu.Unlock()
		switch {
		case isUser:
			return vc.Sub, true, nil
		case isIdentity:
			return vc.Sub, false, nil
		}
		return "", false, rpcErr(codeNotFound, "identity not found")
	}

	e.mu.Lock()
	id, ok := e.identities[identityID]
	var static *staticIdentity
	var claim *claimMatch
	if ok {
		static, claim = id.Static, id.Claim
	}
	e.mu.Unlock()
	if !ok {
		return "", false, rpcErr(codeNotFound, "identity not found")
	}
	switch {
	case static != nil:
		if c.Iss != static.Issuer || c.Sub != static.Subject {
			return "", false, rpcErr(codePermissionDenied, "token does not match the identity")
		}
		if _, err := verifySig(tok, jwksKeys(static.keys)); err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		if !now.Before(static.Expiration) {
			return "", false, rpcErr(codeInvalidArgument, "this identity's keys have expired")
		}
		auds := static.Audiences
		if len(auds) == 0 {
			auds = []string{e.issuerURL}
		}
		okAud := false
		for _, a := range auds {
			okAud = okAud || c.hasAud(a)
		}
		if !okAud {
			return "", false, rpcErr(codePermissionDenied, fmt.Sprintf("token audience must contain %q", auds[0]))
		}
		if c.Exp == nil || !now.Before(c.Exp.Time()) {
			return "", false, rpcErr(codeUnauthenticated, "subject token expired")
		}
		return identityID, false, nil
	case claim != nil:
		var keys []any
		switch c.Iss {
		case e.OIDCIssuerURL():
			keys = []any{&e.oidcKey.priv.PublicKey}
		case e.issuerURL:
			keys = []any{&e.issuerKey.priv.PublicKey}
		default:
			return "", false, rpcErr(codePermissionDenied, fmt.Sprintf("token issuer %q does not match the identity", c.Iss))
		}
		vc, err := verifyWith(tok, keys, now)
		if err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		if vc.Iss != claim.Issuer || vc.Sub != claim.Subject || !vc.hasAud(claim.Audience) {
			return "", false, rpcErr(codePermissionDenied, "token does not match the identity's claim match")
		}
		return identityID, false, nil
	}
	return "", false, rpcErr(codePermissionDenied, "identity cannot be assumed")
}

// --- Auth: who am I (PROTOCOL §6), headless sessions (§4.1) ---

// authServer is chainguard.platform.auth.Auth.
type authServer struct {
	authv1.UnimplementedAuthServer
	e *Emulator
}

// userCapabilities are what a person may do in their orgs.
var userCapabilities = []string{"groups.list", "identity.create", "identity.delete", "identity.list", "registry.pull", "registry.push", "rolebinding.create", "roles.list"}

func (s *authServer) Validate(ctx context.Context, req *emptypb.Empty) (*authv1.WhoAmI, error) {
	e := s.e
	e.record(ctx, authv1.Auth_Validate_FullMethodName, req)
	c, rerr := e.verifyChainguard(bearerMD(ctx), "")
	if rerr != nil {
		return nil, rerr
	}
	out := &authv1.WhoAmI{
		Issuer: c.Iss, Subject: c.Sub, Audience: []string(c.Aud),
		Expiry: timestamppb.New(c.Exp.Time()), IssuedAt: timestamppb.New(c.Iat.Time()),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u, isUser := e.users[c.Sub]
	if isUser {
		out.Email = u.email
	}
	for _, o := range e.callerOrgsLocked(c.Sub) {
		g := &iamv1.Group{Id: o.ID, Name: o.Name}
		if isUser {
			out.Capabilities = append(out.Capabilities, &authv1.WhoAmI_Capability{Group: g, Capabilities: userCapabilities})
			continue
		}
		for _, r := range e.roles {
			if e.identities[c.Sub].Roles[r.ID] {
				out.Capabilities = append(out.Capabilities, &authv1.WhoAmI_Capability{Group: g, Role: r.proto()})
			}
		}
	}
	return out, nil
}

func (s *authServer) GetHeadlessSession(ctx context.Context, req *authv1.GetHeadlessSessionRequest) (*authv1.HeadlessSession, error) {
	s.e.record(ctx, authv1.Auth_GetHeadlessSession_FullMethodName, req)
	sess, rerr := s.e.headlessSession(req.GetCode())
	if rerr != nil {
		return nil, rerr
	}
	return sess, nil
}

package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	iamv1 "chainguard.dev/sdk/proto/platform/iam/v1"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var orgIDRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// maxPullTokenTTL is the longest expiration a static identity may have, with
// an hour of slack for clock differences.
const maxPullTokenTTL = 8760*time.Hour + time.Hour

// apiCounters name the platform API's RPCs in Count, whichever way they arrive.
var apiCounters = map[string]string{
	iamv1.Roles_List_FullMethodName:          "api/roles",
	iamv1.Identities_Create_FullMethodName:   "api/identities.create",
	iamv1.Identities_List_FullMethodName:     "api/identities.list",
	iamv1.Identities_Delete_FullMethodName:   "api/identities.delete",
	iamv1.RoleBindings_Create_FullMethodName: "api/rolebindings.create",
	iamv1.Groups_List_FullMethodName:         "api/groups",
}

// apiHandler serves the platform API's IAM services (identities, role bindings, roles,
// groups) through the SDK's generated gateway and as gRPC.
func (e *Emulator) apiHandler() (http.Handler, *grpc.Server, error) {
	ids, rbs, roles, groups := &identitiesServer{e: e}, &roleBindingsServer{e: e}, &rolesServer{e: e}, &groupsServer{e: e}
	gw := newGateway()
	ctx := context.Background()
	for name, reg := range map[string]func() error{
		"Identities":   func() error { return iamv1.RegisterIdentitiesHandlerServer(ctx, gw, ids) },
		"RoleBindings": func() error { return iamv1.RegisterRoleBindingsHandlerServer(ctx, gw, rbs) },
		"Roles":        func() error { return iamv1.RegisterRolesHandlerServer(ctx, gw, roles) },
		"Groups":       func() error { return iamv1.RegisterGroupsHandlerServer(ctx, gw, groups) },
	} {
		if err := reg(); err != nil {
			return nil, nil, fmt.Errorf("%s gateway: %w", name, err)
		}
	}
	g := e.grpcServer(apiCounters, "api/other", false)
	iamv1.RegisterIdentitiesServer(g, ids)
	iamv1.RegisterRoleBindingsServer(g, rbs)
	iamv1.RegisterRolesServer(g, roles)
	iamv1.RegisterGroupsServer(g, groups)

	mux := http.NewServeMux()
	route := func(pattern, counter string) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			e.hit(counter)
			if s := e.faults().APIStatus; s != 0 {
				writeStatusFault(w, s)
				return
			}
			gw.ServeHTTP(w, r)
		})
	}
	route("GET /iam/v1/roles", "api/roles")
	route("POST /iam/v1/identities/{parent...}", "api/identities.create")
	route("GET /iam/v1/identities", "api/identities.list")
	route("DELETE /iam/v1/identities/{id...}", "api/identities.delete")
	route("POST /iam/v1/rolebindings/{parent...}", "api/rolebindings.create")
	route("GET /iam/v1/groups", "api/groups")
	route("/", "api/other") // the gateway answers: another RPC, a wrong method, or its 404
	return splitGRPC(g, mux), g, nil
}

// apiCaller is the subject of the RPC's bearer token, a Chainguard token for the API.
func (e *Emulator) apiCaller(ctx context.Context) (string, error) {
	c, rerr := e.verifyChainguard(bearerMD(ctx), e.apiURL)
	if rerr != nil {
		return "", rerr
	}
	return c.Sub, nil
}

// memberLocked reports whether caller may act in org id.
func (e *Emulator) memberLocked(caller, org string) bool {
	for _, o := range e.callerOrgsLocked(caller) {
		if o.ID == org {
			return true
		}
	}
	return false
}

func denied(org string) error {
	return rpcErr(codePermissionDenied, fmt.Sprintf("caller does not have the required capabilities at %q", org))
}

func badArg(format string, a ...any) error {
	return rpcErr(codeInvalidArgument, fmt.Sprintf(format, a...))
}

func (r role) proto() *iamv1.Role {
	return &iamv1.Role{Id: r.ID, Name: r.Name, Description: r.Description, Capabilities: append([]string(nil), r.Capabilities...)}
}

// --- roles ---

type rolesServer struct {
	iamv1.UnimplementedRolesServer
	e *Emulator
}

func (s *rolesServer) List(ctx context.Context, f *iamv1.RoleFilter) (*iamv1.RoleList, error) {
	e := s.e
	e.record(ctx, iamv1.Roles_List_FullMethodName, f)
	if _, err := e.apiCaller(ctx); err != nil {
		return nil, err
	}
	out := &iamv1.RoleList{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.roles {
		if (f.GetName() == "" || r.Name == f.GetName()) && (f.GetId() == "" || r.ID == f.GetId()) {
			out.Items = append(out.Items, r.proto())
		}
	}
	return out, nil
}

// --- groups (organizations) ---

type groupsServer struct {
	iamv1.UnimplementedGroupsServer
	e *Emulator
}

// List answers the orgs the caller may act in.
func (s *groupsServer) List(ctx context.Context, f *iamv1.GroupFilter) (*iamv1.GroupList, error) {
	e := s.e
	e.record(ctx, iamv1.Groups_List_FullMethodName, f)
	caller, err := e.apiCaller(ctx)
	if err != nil {
		return nil, err
	}
	out := &iamv1.GroupList{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.callerOrgsLocked(caller) {
		if (f.GetId() == "" || o.ID == f.GetId()) && (f.GetName() == "" || o.Name == f.GetName()) {
			out.Items = append(out.Items, &iamv1.Group{Id: o.ID, Name: o.Name, Verified: e.orgs[o.ID].idp != ""})
		}
	}
	return out, nil
}

// --- identities ---

type identitiesServer struct {
	iamv1.UnimplementedIdentitiesServer
	e *Emulator
}

func (i *identity) proto() *iamv1.Identity {
	out := &iamv1.Identity{Id: i.ID, Name: i.Name, Description: i.Description}
	if !i.Created.IsZero() {
		out.CreatedAt, out.UpdatedAt = timestamppb.New(i.Created), timestamppb.New(i.Created)
	}
	switch {
	case i.Static != nil:
		out.Relationship = &iamv1.Identity_Static{Static: &iamv1.Identity_StaticKeys{
			Issuer: i.Static.Issuer, Subject: i.Static.Subject, IssuerKeys: i.Static.IssuerKeys,
			Expiration: timestamppb.New(i.Static.Expiration), Audiences: i.Static.Audiences,
		}}
	case i.Claim != nil:
		out.Relationship = &iamv1.Identity_ClaimMatch_{ClaimMatch: &iamv1.Identity_ClaimMatch{
			Iss: &iamv1.Identity_ClaimMatch_Issuer{Issuer: i.Claim.Issuer},
			Sub: &iamv1.Identity_ClaimMatch_Subject{Subject: i.Claim.Subject},
			Aud: &iamv1.Identity_ClaimMatch_Audience{Audience: i.Claim.Audience},
		}}
	}
	return out
}

func (s *identitiesServer) Create(ctx context.Context, req *iamv1.CreateIdentityRequest) (*iamv1.Identity, error) {
	e := s.e
	e.record(ctx, iamv1.Identities_Create_FullMethodName, req)
	caller, err := e.apiCaller(ctx)
	if err != nil {
		return nil, err
	}
	parent := req.GetParentId()
	if !orgIDRE.MatchString(parent) {
		return nil, badArg("invalid parent %q", parent)
	}
	e.mu.Lock()
	ok := e.memberLocked(caller, parent)
	e.mu.Unlock()
	if !ok {
		return nil, denied(parent)
	}
	id, err := e.newIdentity(req.GetIdentity())
	if err != nil {
		return nil, err
	}
	if id.Static != nil {
		// The org's plan caps a pull token's life (inferred from Chainguard's plans: Starter
		// 720h, Team 168h, others 8760h); the message names the cap.
		e.mu.Lock()
		limit := e.orgs[parent].maxPullTTL
		e.mu.Unlock()
		if limit > 0 && id.Static.Expiration.Sub(e.now()) > limit+time.Minute {
			return nil, badArg("static.expiration exceeds this organization's maximum pull token lifetime of %s", shortHours(limit))
		}
	}
	id.Parent = parent
	id.ID = parent + "/" + randHex(8)
	id.Roles = map[string]bool{}
	id.Created = e.now().UTC().Truncate(time.Second)
	e.mu.Lock()
	e.identities[id.ID] = id
	e.mu.Unlock()
	return id.proto(), nil
}

// newIdentity checks an Identity to create; the emulator knows claim-match and static-key
// identities with exact issuer, subject and audience.
func (e *Emulator) newIdentity(in *iamv1.Identity) (*identity, error) {
	if in == nil {
		return nil, badArg("identity is required")
	}
	if in.GetId() != "" {
		return nil, badArg("id must be empty on create")
	}
	id := &identity{Name: in.GetName(), Description: in.GetDescription()}
	if strings.TrimSpace(id.Name) == "" {
		return nil, badArg("name is required")
	}
	switch r := in.GetRelationship().(type) {
	case nil:
		return nil, badArg("exactly one of static or claim_match is required")
	case *iamv1.Identity_ClaimMatch_:
		cm := r.ClaimMatch
		if cm.GetIssuerPattern() != "" || cm.GetSubjectPattern() != "" || cm.GetAudiencePattern() != "" || len(cm.GetClaims()) > 0 || len(cm.GetClaimPatterns()) > 0 {
			return nil, rpcErr(codeUnimplemented, "the emulator matches exact issuer, subject and audience only")
		}
		c := &claimMatch{Issuer: cm.GetIssuer(), Subject: cm.GetSubject(), Audience: cm.GetAudience()}
		if c.Issuer == "" || c.Subject == "" {
			return nil, badArg("claim_match.issuer and claim_match.subject are required")
		}
		if c.Audience == "" {
			u, _ := url.Parse(e.issuerURL)
			c.Audience = u.Host
		}
		id.Claim = c
		return id, nil
	case *iamv1.Identity_Static:
		st, err := e.newStatic(r.Static)
		if err != nil {
			return nil, err
		}
		id.Static = st
		return id, nil
	default:
		return nil, rpcErr(codeUnimplemented, fmt.Sprintf("identity relationship %T is not emulated", r))
	}
}

func (e *Emulator) newStatic(in *iamv1.Identity_StaticKeys) (*staticIdentity, error) {
	st := &staticIdentity{Issuer: in.GetIssuer(), Subject: in.GetSubject(), IssuerKeys: in.GetIssuerKeys(), Audiences: in.GetAudiences()}
	if u, err := url.Parse(st.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, badArg("static.issuer must be an https URL")
	}
	if st.Subject == "" {
		return nil, badArg("static.subject is required")
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(st.IssuerKeys))).Decode(&st.keys); err != nil || len(st.keys.Keys) == 0 {
		return nil, badArg("static.issuer_keys must be a JWKS with at least one key")
	}
	for _, k := range st.keys.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, badArg("static.issuer_keys must hold public keys only")
		}
		if k.Algorithm != "" && k.Algorithm != string(jose.RS256) {
			return nil, badArg("static.issuer_keys: unsupported algorithm %q", k.Algorithm)
		}
	}
	if in.GetExpiration() == nil {
		return nil, badArg("static.expiration is required")
	}
	t := in.GetExpiration().AsTime()
	now := e.now()
	if !t.After(now) {
		return nil, badArg("static.expiration must be in the future")
	}
	if t.Sub(now) > maxPullTokenTTL {
		return nil, badArg("static.expiration must be within 8760h")
	}
	st.Expiration = t
	return st, nil
}

func (s *identitiesServer) List(ctx context.Context, f *iamv1.IdentityFilter) (*iamv1.IdentityList, error) {
	e := s.e
	e.record(ctx, iamv1.Identities_List_FullMethodName, f)
	caller, err := e.apiCaller(ctx)
	if err != nil {
		return nil, err
	}
	org := f.GetUidp().GetChildrenOf()
	if org == "" {
		org = f.GetUidp().GetDescendantsOf()
	}
	one := f.GetId()
	if org == "" && one == "" {
		return nil, badArg("uidp.children_of or id is required")
	}
	if one != "" {
		org, _, _ = strings.Cut(one, "/")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, org) {
		return nil, denied(org)
	}
	var ids []string
	for id, i := range e.identities {
		if (one != "" && id == one) || (one == "" && i.Parent == org) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := &iamv1.IdentityList{}
	for _, id := range ids {
		out.Items = append(out.Items, e.identities[id].proto())
	}
	return out, nil
}

func (s *identitiesServer) Delete(ctx context.Context, req *iamv1.DeleteIdentityRequest) (*emptypb.Empty, error) {
	e := s.e
	e.record(ctx, iamv1.Identities_Delete_FullMethodName, req)
	caller, err := e.apiCaller(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetId()
	if !identityIDRE.MatchString(id) {
		return nil, badArg("invalid identity id %q", id)
	}
	parent, _, _ := strings.Cut(id, "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, parent) {
		return nil, denied(parent)
	}
	if _, ok := e.identities[id]; !ok {
		return nil, rpcErr(codeNotFound, "identity not found")
	}
	delete(e.identities, id)
	return &emptypb.Empty{}, nil
}

// --- role bindings ---

type roleBindingsServer struct {
	iamv1.UnimplementedRoleBindingsServer
	e *Emulator
}

func (s *roleBindingsServer) Create(ctx context.Context, req *iamv1.CreateRoleBindingRequest) (*iamv1.RoleBinding, error) {
	e := s.e
	e.record(ctx, iamv1.RoleBindings_Create_FullMethodName, req)
	caller, err := e.apiCaller(ctx)
	if err != nil {
		return nil, err
	}
	parent := req.GetParent()
	if !orgIDRE.MatchString(parent) {
		return nil, badArg("invalid parent %q", parent)
	}
	rb := req.GetRoleBinding()
	if rb == nil {
		return nil, badArg("role_binding is required")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, parent) {
		return nil, denied(parent)
	}
	id, ok := e.identities[rb.GetIdentity()]
	if !ok {
		return nil, rpcErr(codeNotFound, "identity not found")
	}
	if id.Parent != parent {
		return nil, badArg("identity %q is not in group %q", rb.GetIdentity(), parent)
	}
	found := false
	for _, ro := range e.roles {
		found = found || ro.ID == rb.GetRole()
	}
	if !found {
		return nil, rpcErr(codeNotFound, "role not found")
	}
	id.Roles[rb.GetRole()] = true
	bid := parent + "/" + randHex(8)
	id.Bindings = append(id.Bindings, bid)
	return &iamv1.RoleBinding{Id: bid, Identity: rb.GetIdentity(), Group: parent, Role: rb.GetRole()}, nil
}

// shortHours prints a whole-hour duration as "720h".
func shortHours(d time.Duration) string { return fmt.Sprintf("%dh", int(d/time.Hour)) }

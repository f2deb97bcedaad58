package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var orgIDRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// maxPullTokenTTL is the longest expiration a static identity may have, with
// an hour of slack for clock differences.
const maxPullTokenTTL = 8760*time.Hour + time.Hour

func (e *Emulator) apiHandler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, counter string, h func(w http.ResponseWriter, r *http.Request, caller string)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			e.hit(counter)
			if s := e.faults().APIStatus; s != 0 {
				writeStatusFault(w, s)
				return
			}
			c, rerr := e.verifyChainguard(bearer(r), e.apiURL)
			if rerr != nil {
				writeRPC(w, rerr)
				return
			}
			h(w, r, c.Sub)
		})
	}
	route("GET /iam/v1/roles", "api/roles", e.handleRoles)
	route("POST /iam/v1/identities/{parent}", "api/identities.create", e.handleCreateIdentity)
	route("GET /iam/v1/identities", "api/identities.list", e.handleListIdentities)
	route("DELETE /iam/v1/identities/{id...}", "api/identities.delete", e.handleDeleteIdentity)
	route("POST /iam/v1/rolebindings/{parent}", "api/rolebindings.create", e.handleCreateRoleBinding)
	route("GET /iam/v1/groups", "api/groups", e.handleGroups)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		e.hit("api/other")
		writeRPC(w, rpcErr(codeNotFound, "Not Found"))
	})
	return mux
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

func (e *Emulator) handleRoles(w http.ResponseWriter, r *http.Request, _ string) {
	want := r.URL.Query().Get("name")
	items := []map[string]any{}
	e.mu.Lock()
	for _, ro := range e.roles {
		if want == "" || ro.Name == want {
			items = append(items, map[string]any{"id": ro.ID, "name": ro.Name, "description": ro.Description, "capabilities": ro.Capabilities})
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (e *Emulator) handleGroups(w http.ResponseWriter, r *http.Request, caller string) {
	items := []map[string]string{}
	e.mu.Lock()
	for _, o := range e.callerOrgsLocked(caller) {
		items = append(items, map[string]string{"id": o.ID, "name": o.Name})
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func identityJSON(i *identity) map[string]any {
	out := map[string]any{"id": i.ID, "name": i.Name, "description": i.Description}
	if i.Static != nil {
		out["static"] = map[string]any{
			"issuer": i.Static.Issuer, "subject": i.Static.Subject, "issuerKeys": i.Static.IssuerKeys,
			"expiration": i.Static.Expiration.UTC().Format(time.RFC3339),
		}
	}
	if i.Claim != nil {
		out["claimMatch"] = map[string]any{"issuer": i.Claim.Issuer, "subject": i.Claim.Subject, "audience": i.Claim.Audience}
	}
	return out
}

// pick returns the value of the first present key (proto JSON accepts the
// lowerCamel and the original snake_case name).
func pick(m map[string]json.RawMessage, keys ...string) (json.RawMessage, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return nil, false
}

func str(m map[string]json.RawMessage, keys ...string) (string, error) {
	v, ok := pick(m, keys...)
	if !ok || string(v) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%s must be a string", keys[0])
	}
	return s, nil
}

func onlyKeys(m map[string]json.RawMessage, where string, allowed ...string) error {
	for k := range m {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("unknown field %q in %s", k, where)
		}
	}
	return nil
}

func (e *Emulator) handleCreateIdentity(w http.ResponseWriter, r *http.Request, caller string) {
	parent := r.PathValue("parent")
	if !orgIDRE.MatchString(parent) {
		writeRPC(w, rpcErr(codeInvalidArgument, fmt.Sprintf("invalid parent %q", parent)))
		return
	}
	e.mu.Lock()
	ok := e.memberLocked(caller, parent)
	e.mu.Unlock()
	if !ok {
		writeRPC(w, rpcErr(codePermissionDenied, fmt.Sprintf("caller does not have the required capabilities at %q", parent)))
		return
	}
	id, rerr := e.parseIdentity(r)
	if rerr != nil {
		writeRPC(w, rerr)
		return
	}
	id.Parent = parent
	id.ID = parent + "/" + randHex(8)
	id.Roles = map[string]bool{}
	e.mu.Lock()
	e.identities[id.ID] = id
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, identityJSON(id))
}

func (e *Emulator) parseIdentity(r *http.Request) (*identity, *rpcError) {
	bad := func(format string, a ...any) (*identity, *rpcError) {
		return nil, rpcErr(codeInvalidArgument, fmt.Sprintf(format, a...))
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&top); err != nil || top == nil {
		return bad("request body must be a JSON Identity")
	}
	if err := onlyKeys(top, "Identity", "id", "uidp", "name", "description", "static", "claimMatch", "claim_match",
		"serviceAccount", "service_account", "createTime", "create_time", "updateTime", "update_time"); err != nil {
		return bad("%v", err)
	}
	id := &identity{}
	var err error
	if s, _ := str(top, "id"); s != "" {
		return bad("id must be empty on create")
	}
	if id.Name, err = str(top, "name"); err != nil {
		return bad("%v", err)
	}
	if strings.TrimSpace(id.Name) == "" {
		return bad("name is required")
	}
	if id.Description, err = str(top, "description"); err != nil {
		return bad("%v", err)
	}
	staticRaw, hasStatic := pick(top, "static")
	claimRaw, hasClaim := pick(top, "claimMatch", "claim_match")
	if hasStatic == hasClaim {
		return bad("exactly one of static or claimMatch is required")
	}
	if hasClaim {
		var cm map[string]json.RawMessage
		if err := json.Unmarshal(claimRaw, &cm); err != nil || cm == nil {
			return bad("claimMatch must be an object")
		}
		if err := onlyKeys(cm, "claimMatch", "issuer", "subject", "audience"); err != nil {
			return bad("%v", err)
		}
		c := &claimMatch{}
		c.Issuer, _ = str(cm, "issuer")
		c.Subject, _ = str(cm, "subject")
		c.Audience, _ = str(cm, "audience")
		if c.Issuer == "" || c.Subject == "" {
			return bad("claimMatch.issuer and claimMatch.subject are required")
		}
		if c.Audience == "" {
			u, _ := url.Parse(e.issuerURL)
			c.Audience = u.Host
		}
		id.Claim = c
		return id, nil
	}
	var sm map[string]json.RawMessage
	if err := json.Unmarshal(staticRaw, &sm); err != nil || sm == nil {
		return bad("static must be an object")
	}
	if err := onlyKeys(sm, "static", "issuer", "subject", "issuerKeys", "issuer_keys", "expiration"); err != nil {
		return bad("%v", err)
	}
	st := &staticIdentity{}
	st.Issuer, _ = str(sm, "issuer")
	st.Subject, _ = str(sm, "subject")
	st.IssuerKeys, err = str(sm, "issuerKeys", "issuer_keys")
	if err != nil {
		return bad("static.issuerKeys must be a string holding a JWKS")
	}
	exp, _ := str(sm, "expiration")
	if u, err := url.Parse(st.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		return bad("static.issuer must be an https URL")
	}
	if st.Subject == "" {
		return bad("static.subject is required")
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(st.IssuerKeys))).Decode(&st.keys); err != nil || len(st.keys.Keys) == 0 {
		return bad("static.issuerKeys must be a JWKS with at least one key")
	}
	for _, k := range st.keys.Keys {
		if !k.Valid() || !k.IsPublic() {
			return bad("static.issuerKeys must hold public keys only")
		}
		if k.Algorithm != "" && k.Algorithm != string(jose.RS256) {
			return bad("static.issuerKeys: unsupported algorithm %q", k.Algorithm)
		}
	}
	t, err := time.Parse(time.RFC3339, exp)
	if err != nil {
		return bad("static.expiration must be an RFC 3339 time")
	}
	now := e.now()
	if !t.After(now) {
		return bad("static.expiration must be in the future")
	}
	if t.Sub(now) > maxPullTokenTTL {
		return bad("static.expiration must be within 8760h")
	}
	st.Expiration = t
	id.Static = st
	return id, nil
}

func (e *Emulator) handleListIdentities(w http.ResponseWriter, r *http.Request, caller string) {
	q := r.URL.Query()
	org := q.Get("uidp.childrenOf")
	if org == "" {
		org = q.Get("uidp.descendantsOf")
	}
	one := q.Get("id")
	if org == "" && one == "" {
		writeRPC(w, rpcErr(codeInvalidArgument, "uidp.childrenOf or id is required"))
		return
	}
	if one != "" {
		org, _, _ = strings.Cut(one, "/")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, org) {
		writeRPC(w, rpcErr(codePermissionDenied, fmt.Sprintf("caller does not have the required capabilities at %q", org)))
		return
	}
	var ids []string
	for id, i := range e.identities {
		if (one != "" && id == one) || (one == "" && i.Parent == org) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	items := []map[string]any{}
	for _, id := range ids {
		items = append(items, identityJSON(e.identities[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (e *Emulator) handleDeleteIdentity(w http.ResponseWriter, r *http.Request, caller string) {
	id := r.PathValue("id")
	if !identityIDRE.MatchString(id) {
		writeRPC(w, rpcErr(codeInvalidArgument, fmt.Sprintf("invalid identity id %q", id)))
		return
	}
	parent, _, _ := strings.Cut(id, "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, parent) {
		writeRPC(w, rpcErr(codePermissionDenied, fmt.Sprintf("caller does not have the required capabilities at %q", parent)))
		return
	}
	if _, ok := e.identities[id]; !ok {
		writeRPC(w, rpcErr(codeNotFound, "identity not found"))
		return
	}
	delete(e.identities, id)
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (e *Emulator) handleCreateRoleBinding(w http.ResponseWriter, r *http.Request, caller string) {
	parent := r.PathValue("parent")
	if !orgIDRE.MatchString(parent) {
		writeRPC(w, rpcErr(codeInvalidArgument, fmt.Sprintf("invalid parent %q", parent)))
		return
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
		writeRPC(w, rpcErr(codeInvalidArgument, "request body must be a JSON RoleBinding"))
		return
	}
	if err := onlyKeys(body, "RoleBinding", "id", "identity", "role", "group"); err != nil {
		writeRPC(w, rpcErr(codeInvalidArgument, err.Error()))
		return
	}
	idID, _ := str(body, "identity")
	roleID, _ := str(body, "role")
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memberLocked(caller, parent) {
		writeRPC(w, rpcErr(codePermissionDenied, fmt.Sprintf("caller does not have the required capabilities at %q", parent)))
		return
	}
	id, ok := e.identities[idID]
	if !ok {
		writeRPC(w, rpcErr(codeNotFound, "identity not found"))
		return
	}
	if id.Parent != parent {
		writeRPC(w, rpcErr(codeInvalidArgument, fmt.Sprintf("identity %q is not in group %q", idID, parent)))
		return
	}
	found := false
	for _, ro := range e.roles {
		if ro.ID == roleID {
			found = true
		}
	}
	if !found {
		writeRPC(w, rpcErr(codeNotFound, "role not found"))
		return
	}
	id.Roles[roleID] = true
	bid := parent + "/" + randHex(8)
	id.Bindings = append(id.Bindings, bid)
	writeJSON(w, http.StatusOK, map[string]string{"id": bid, "identity": idID, "group": parent, "role": roleID})
}

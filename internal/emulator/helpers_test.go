package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, opts Options) *Emulator {
	t.Helper()
	e, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// callback is the helper's side of the browser login: a loopback server that
// records the query the issuer redirected to and answers 200.
type callback struct {
	url   string
	query chan url.Values
}

func newCallback(t *testing.T) *callback {
	t.Helper()
	cb := &callback{query: make(chan url.Values, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			cb.query <- r.URL.Query()
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		io.WriteString(w, "you may close this window")
	})}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cb.url = "http://localhost:" + ln.Addr().String()[strings.LastIndex(ln.Addr().String(), ":")+1:] + "/callback?token=true&error=true"
	return cb
}

func oauthURL(e *Emulator, redirect string) string {
	q := url.Values{}
	q.Set("audience", "cgr.dev")
	q.Set("client_id", "auth0")
	q.Set("create_refresh_token", "true")
	q.Set("exit", "redirect")
	q.Set("redirect", redirect)
	q.Set("skip_registration", "true")
	return e.IssuerURL() + "/oauth?" + q.Encode()
}

// browserLogin runs the browser flow and returns the callback's query.
func browserLogin(t *testing.T, e *Emulator) url.Values {
	t.Helper()
	cb := newCallback(t)
	if err := e.Browse(context.Background(), oauthURL(e, cb.url)); err != nil {
		t.Fatalf("Browse: %v", err)
	}
	select {
	case q := <-cb.query:
		return q
	default:
		t.Fatal("callback not reached")
	}
	return nil
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (status %d): %v", r.status, err)
	}
	return m
}

func do(t *testing.T, method, u, bearerTok, contentType string, body io.Reader) resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if bearerTok != "" {
		req.Header.Set("Authorization", "Bearer "+bearerTok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func form(kv ...string) io.Reader {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return strings.NewReader(v.Encode())
}

const formType = "application/x-www-form-urlencoded"

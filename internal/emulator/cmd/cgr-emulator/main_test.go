package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBrowse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "/done?token=secret-value", http.StatusFound)
		case "/done":
			w.Write([]byte("you may close this window"))
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	if code := run([]string{"browse", srv.URL + "/start"}, &out, &errOut); code != 0 {
		t.Fatalf("browse to a 2xx page: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"browse", srv.URL + "/missing?token=secret-value"}, &out, &errOut); code != 1 {
		t.Fatalf("browse to a 404: exit %d", code)
	}
	if lines := strings.Count(strings.TrimSpace(errOut.String()), "\n"); lines != 0 || strings.Contains(errOut.String(), "secret-value") {
		t.Errorf("failure output must be one line without the query: %q", errOut.String())
	}
	if code := run([]string{"browse"}, &out, &errOut); code != 2 {
		t.Errorf("browse without URL: exit %d, want 2", code)
	}
	if code := run([]string{"-bogus"}, &out, &errOut); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestHelpListsBrowse(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"cgr-emulator browse URL", "-device-flow", "-org-idp", "-env-file"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("--help does not mention %q:\n%s", want, errOut.String())
		}
	}
}

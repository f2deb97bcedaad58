package credhelper

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
)

// fixedHelper answers every Get with the same values.
type fixedHelper struct {
	user, secret string
	err          error
}

func (f fixedHelper) Add(*credentials.Credentials) error { return errors.New("unused") }
func (f fixedHelper) Delete(string) error                { return errors.New("unused") }
func (f fixedHelper) List() (map[string]string, error)   { return nil, errors.New("unused") }
func (f fixedHelper) Get(string) (string, string, error) { return f.user, f.secret, f.err }

// TestGetAnswersAsTheLibrary: get writes what docker-credential-helpers' own get action writes,
// byte for byte, and fails as it does, for plain answers (written without encoding/json) and
// for those that need escaping (written by it).
func TestGetAnswersAsTheLibrary(t *testing.T) {
	inputs := []string{
		"cgr.dev\n", "cgr.dev", "", "\n", "  cgr.dev \r\n", "cgr.dev\nexample.com\n", "\t\n \n",
		"https://cgr.dev/v2/", "cgr.dev\n" + strings.Repeat("y", 70000), "h\u00e9.dev\n", "a<b>&c\"d\\e\n",
	}
	answers := []fixedHelper{
		{user: "_token", secret: "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln"},
		{user: "", secret: ""},
		{user: "u", secret: `se"c\ret<>&`},
		{user: "\u00fc", secret: "\u2028\x00\x7f"},
		{err: credentials.NewErrCredentialsNotFound()},
		{err: errors.New("your cgr.dev session expired; run `docker-credential-cgr login`")},
	}
	fast := 0
	for _, in := range inputs {
		for _, a := range answers {
			var got, want bytes.Buffer
			gotErr := get(a, strings.NewReader(in), &got)
			wantErr := credentials.HandleCommand(a, "get", strings.NewReader(in), &want)
			if got.String() != want.String() || errString(gotErr) != errString(wantErr) {
				t.Errorf("get of %.40q answering %+v:\n got  %q, %v\n want %q, %v", in, a, got.String(), gotErr, want.String(), wantErr)
			}
			if gotErr == nil && jsonVerbatim(a.user) && jsonVerbatim(a.secret) && jsonVerbatim(strings.TrimSpace(in)) {
				fast++
			}
		}
	}
	if fast < 8 {
		t.Fatalf("only %d answers took the path without encoding/json", fast)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// FuzzAnswer: writeAnswer writes any three strings as json.Encoder does.
func FuzzAnswer(f *testing.F) {
	f.Add("cgr.dev", "_token", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln")
	f.Add("cgr.dev", "", "")
	f.Add("a<b", "&", "\u2028\"\\\x01\x7f\xff")
	f.Fuzz(func(t *testing.T, url, user, secret string) {
		c := credentials.Credentials{ServerURL: url, Username: user, Secret: secret}
		var got, want bytes.Buffer
		if err := writeAnswer(&got, c); err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(&want).Encode(c); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("answer for %q %q %q:\n got  %q\n want %q", url, user, secret, got.String(), want.String())
		}
	})
}

package main

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"

	"github.com/cgrtools/docker-credential-cgr/internal/cli"
)

// The command decides whether a sudo run stays root (configure writes root's files too), so
// it must be the one cobra will run, whatever global flags come first.
func TestCommandName(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"get"}, "get"},
		{[]string{"configure"}, "configure"},
		{[]string{"configure", "--docker"}, "configure"},
		{[]string{"--registry", "r.example", "configure"}, "configure"},
		{[]string{"--registry=r.example", "configure"}, "configure"},
		{[]string{"--store", "file", "--issuer", "https://i.example", "configure", "--remove"}, "configure"},
		{[]string{"--api=https://a.example", "--store", "file", "configure"}, "configure"},
		{[]string{"--registry", "configure"}, ""}, // configure is the flag's value
		{[]string{"--registry", "configure", "login"}, "login"},
		{[]string{"--help", "configure"}, "configure"}, // a flag without a value
		{[]string{"-h", "configure"}, "configure"},
		{[]string{"-", "", "configure"}, "configure"},
		{[]string{"--", "configure"}, ""},                        // after --, only arguments
		{[]string{"--registry", "--", "configure"}, "configure"}, // "--" as a flag's value
		{[]string{"login", "configure"}, "login"},
		{[]string{"--store"}, ""},
		{[]string{"--version"}, ""},
		{[]string{"-v"}, ""},
	} {
		if got := commandName(c.args); got != c.want {
			t.Errorf("commandName(%q) = %q; want %q", c.args, got, c.want)
		}
	}
}

// valueFlags is exactly the root command's persistent flags that take a value, none with a
// shorthand (commandName assumes that of every -x).
func TestValueFlagsMatchRoot(t *testing.T) {
	root := cli.Root(&cli.App{})
	got := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Shorthand != "" {
			t.Errorf("persistent flag --%s has shorthand -%s; commandName does not know it", f.Name, f.Shorthand)
		}
		if f.NoOptDefVal == "" {
			got[f.Name] = true
		}
	})
	for name := range got {
		if !slices.Contains(valueFlags, name) {
			t.Errorf("persistent flag --%s takes a value but is not in valueFlags", name)
		}
	}
	for _, name := range valueFlags {
		if !got[name] {
			t.Errorf("valueFlags names --%s, which is not a persistent flag taking a value", name)
		}
	}
}

package keystore

import (
	"context"
	"testing"
)

func BenchmarkFileGet(b *testing.B) {
	s, err := Open(context.Background(), Options{Backend: "file", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	benchGet(b, s)
}

func BenchmarkFileSet(b *testing.B) {
	s, err := Open(context.Background(), Options{Backend: "file", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	v := bigValue(1500, 1)
	for b.Loop() {
		if err := s.Set(ctx, "token/issuer.enforce.dev/cgr.dev", v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeychainGet(b *testing.B) {
	realKeyring(b)
	s, err := Open(context.Background(), Options{Backend: "keychain", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	benchGet(b, s)
}

// BenchmarkAutoOpen is what every docker pull pays to pick a backend.
func BenchmarkAutoOpen(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, err := Open(context.Background(), Options{Backend: "auto", Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGet(b *testing.B, s Store) {
	ctx := context.Background()
	const key = "token/issuer.enforce.dev/cgr.dev"
	if err := s.Set(ctx, key, bigValue(1500, 1)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Delete(ctx, key) })
	for b.Loop() {
		if _, err := s.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileOpen is what every get pays to open a file store holding a login (a session,
// two cached tokens, a pull token, locks and state): the directory checks and the look for
// temp files left by killed writers.
func BenchmarkFileOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(context.Background(), Options{Backend: "file", Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []string{"session/i", "token/i/cgr.dev", "token/i/x", "pull/cgr.dev"} {
		if err := s.Set(context.Background(), k, bigValue(1500, 1)); err != nil {
			b.Fatal(err)
		}
	}
	if unlock, err := Lock(context.Background(), dir, "refresh-i"); err == nil {
		unlock()
	}
	for b.Loop() {
		if _, err := Open(context.Background(), Options{Backend: "file", Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
}

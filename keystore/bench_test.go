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

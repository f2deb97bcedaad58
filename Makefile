# docker-credential-cgr. `make demo` shows it working offline against the emulator;
# `make test` runs the whole suite (installing what it needs); `make bench` prints the figures.
GO      ?= go
BIN     := bin/docker-credential-cgr
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# nethttpomithttp2: the issuer and API speak HTTP/1.1 to the helper; net/http's bundled HTTP/2
# costs every get its package init (docs/BENCH.md).
TAGS    := nethttpomithttp2

.PHONY: build demo test bench fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) .

demo: build
	$(GO) run ./internal/demo -helper $(BIN)

test:
	scripts/test.sh

bench: build
	scripts/bench.sh

clean:
	rm -rf bin dist .cache

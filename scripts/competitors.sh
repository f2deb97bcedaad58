#!/usr/bin/env bash
# Installs the other credential helpers that `make bench` compares with, pinned, into
# .cache/bin, only when missing:
#   - with plain `go install`, as each project documents it (unstripped; cgo where the
#     toolchain defaults to it): the binaries that are run and measured;
#   - into .cache/bin/stripped, built as our release is (CGO_ENABLED=0 -trimpath -s -w): only
#     for the like-for-like size row.
# Only the Go module proxy is used. chainctl's helper is not here: it ships inside chainctl's
# release binaries, not as a Go module, and is not installable offline (see docs/BENCH.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin/stripped
install_go() { # name module@version
  [ -x ".cache/bin/$1" ] || { echo "competitors: go install $2" >&2; GOBIN="$PWD/.cache/bin" go install "$2"; }
  [ -x ".cache/bin/stripped/$1" ] || {
    echo "competitors: go install (stripped, static) $2" >&2
    GOBIN="$PWD/.cache/bin/stripped" CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' "$2"
  }
}
install_go docker-credential-ecr-login github.com/awslabs/amazon-ecr-credential-helper/ecr-login/cli/docker-credential-ecr-login@v0.12.0
install_go docker-credential-gcr github.com/GoogleCloudPlatform/docker-credential-gcr/v2@v2.2.1

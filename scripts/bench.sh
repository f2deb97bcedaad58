#!/usr/bin/env bash
# Usage: scripts/bench.sh [bench flags: -n 300 -hist=false -micro "" -benchtime 200x
#                          -compare=false -compare-only]
#
# Prints ONE table (markdown) of docker-credential-cgr's figures as clients see them: warm
# `get` against the exec floor of a trivial static Go binary, keychain `get` against
# docker-credential-secretservice on the same gnome-keyring, refreshes per expiry under
# concurrent `get`s, binary size, peak RSS, and the Go micro-benchmarks. Latencies are run
# interleaved and reported as ratios, so machine noise cancels. `make bench` runs it after
# `make build`; the keychain rows need the private keyring of scripts/with-keyring.sh.
# Then, clearly labelled, "Compared with other helpers": docker-credential-ecr-login and
# docker-credential-gcr (scripts/competitors.sh installs them), run only inside a network
# namespace with loopback alone (`unshare -n`), so nothing they try leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/competitors.sh
export PATH="$PWD/.cache/bin:$PATH"
[ -x bin/docker-credential-cgr ] || make build
mkdir -p .cache/bin
CGO_ENABLED=0 go build -o .cache/bin/cgr-bench ./internal/bench
exec scripts/with-keyring.sh .cache/bin/cgr-bench -helper bin/docker-credential-cgr "$@"

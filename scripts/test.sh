#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test, the keychain tests
# against a real gnome-keyring in a private D-Bus session.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PWD/.cache/bin:$PATH"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
go vet ./...
scripts/with-keyring.sh go test -count=1 -timeout 30m "$@" ./...

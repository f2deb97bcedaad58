#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [seconds-per-target]   (default 5)
#
# Runs every Go fuzz target of the module (func FuzzXxx in a *_test.go file), one after the
# other, each for the given seconds:  go test -run '^$' -fuzz '^Name$' -fuzztime Ns ./pkg
# Seed corpora live in <pkg>/testdata/fuzz/<Name>/ (plain `go test` runs them too). A failure
# stops the run; Go writes the failing input to testdata/fuzz/<Name>/ for a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
case $secs in '' | *[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;; esac

targets=()
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	while IFS= read -r name; do
		targets+=("$pkg $name")
	done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file")
done < <(git ls-files -co --exclude-standard '*_test.go' | sort)

start=$SECONDS
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $pkg $name (${secs}s)" >&2
	if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$pkg" 2>&1); then
		printf '%s\n' "$out" >&2
		echo "fuzz: $pkg $name FAILED" >&2
		exit 1
	fi
done
echo "fuzz: ${#targets[@]} targets passed in $((SECONDS - start))s" >&2

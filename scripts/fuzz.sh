#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [budget-per-target]   (default 20000x: that many executions)
#
# Runs every Go fuzz target of the module (func FuzzXxx in a *_test.go file), one after the
# other, each for the given budget:  go test -run '^$' -fuzz '^Name$' -fuzztime 20000x ./pkg
# The budget is a count, not a duration: a duration-based -fuzztime on Go 1.26 can fail a
# target with a bare "context deadline exceeded" and no crasher at the deadline (a race in
# the fuzz coordinator, go.dev/issue/75804, fixed in Go 1.27). A count has no deadline to race.
# A duration ("30s") is still accepted for long local runs.
# Seed corpora live in <pkg>/testdata/fuzz/<Name>/ (plain `go test` runs them too). A failure
# stops the run; Go writes the failing input to testdata/fuzz/<Name>/ for a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-20000x}
[[ $budget =~ ^[0-9]+[xsm]$ ]] || { echo "usage: $0 [budget-per-target, e.g. 20000x or 30s]" >&2; exit 2; }

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
	echo "fuzz: $pkg $name ($budget)" >&2
	if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "$pkg" 2>&1); then
		printf '%s\n' "$out" >&2
		echo "fuzz: $pkg $name FAILED" >&2
		exit 1
	fi
done
echo "fuzz: ${#targets[@]} targets passed in $((SECONDS - start))s" >&2

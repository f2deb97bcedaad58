#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test, the keychain tests
# against a real gnome-keyring in a private D-Bus session. Ends with a tally and every
# skipped test with its reason, so a skip never passes for a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PWD/.cache/bin:$PATH"
# Every tool is installed now: a binary-level test whose tool is missing fails (internal/e2etest).
export CGR_E2E_STRICT=1
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
go vet ./...

log=.cache/test.log
set +e
scripts/with-keyring.sh go test -count=1 -timeout 30m -v "$@" ./... >"$log" 2>&1
rc=$?
# The helper run by the kubelet's own plugin code (k8s.io/kubernetes), a module of its own so
# that k8s.io/* stays out of the product's go.mod; its results join the log and the tally.
# Both etcd's authpb (linked by k8s.io/kubernetes) and Chainguard's SDK (linked by the emulator)
# register a proto file named "auth.proto"; neither is looked up by file name here, so the
# conflict is a warning (protobuf-go's documented switch), not the panic it is by default.
(cd e2e/kubelet && go vet ./... && GOLANG_PROTOBUF_REGISTRATION_CONFLICT=warn go test -count=1 -timeout 20m -v "$@" ./...) >>"$log" 2>&1 || rc=1
set -e
# Package lines, failures with what they logged, and skips with their reasons.
grep -E '^(ok|FAIL|panic:|\?)' "$log" | grep -v 'no test files' || true
if [ $rc -ne 0 ]; then
  echo; echo "Failures:"
  awk -f scripts/failures.awk "$log" | head -300
fi
skips=$(grep -cE '^\s*--- SKIP' "$log" || true)
if [ "$skips" -gt 0 ]; then
  echo; echo "Skipped:"
  grep -A1 -E '^\s*--- SKIP' "$log" | grep -vE '^--$' | head -40
fi
# Every fuzz target briefly (their seed corpora already ran above), then the release:
# goreleaser check, a snapshot of every OS/arch, and the binaries start or are the right kind.
extra_failed=0
echo
# Every Go benchmark once, so `make bench` keeps working (figures come from `make bench`,
# never from here: one iteration measures nothing).
if ! scripts/with-keyring.sh go test -run '^$' -bench . -benchtime 1x ./... >.cache/bench-smoke.log 2>&1; then
  grep -E -A5 '^(--- FAIL|FAIL|panic:)' .cache/bench-smoke.log | head -40
  echo "benchmarks FAILED (go test -bench . -benchtime 1x)" >&2
  extra_failed=$((extra_failed + 1))
else
  echo "benchmarks: $(grep -cE '^Benchmark' .cache/bench-smoke.log) ran once each"
fi
if ! scripts/fuzz.sh "${FUZZ_BUDGET:-20000x}"; then extra_failed=$((extra_failed + 1)); fi
if ! scripts/release-check.sh >.cache/release.log 2>&1; then
  tail -40 .cache/release.log
  echo "release-check FAILED" >&2
  extra_failed=$((extra_failed + 1))
else
  tail -3 .cache/release.log
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(( $(grep -cE '^\s*--- FAIL' "$log" || true) + extra_failed ))
[ $extra_failed -eq 0 ] || rc=1
echo
echo "$passed passed, $failed failed, $skips skipped"
exit $rc

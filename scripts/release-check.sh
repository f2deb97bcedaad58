#!/usr/bin/env bash
# Usage: scripts/release-check.sh
#
# Checks the release offline: installs goreleaser and syft (pinned, from the Go module proxy,
# into .cache/bin, once), validates .goreleaser.yaml, builds a snapshot release into dist/
# (every OS/arch, archives, checksums, SBOMs; nothing is published or signed), then runs the
# linux/amd64 binary and checks every other binary is the right executable format for its
# OS and architecture, static and stamped with the version.
#
# Cost on the 2-core development machine: installing goreleaser 2m03s and syft 2m23s with
# an empty module cache (once; .cache/bin keeps them); the snapshot 1m45s with a cold Go
# build cache, 8s warm.
set -euo pipefail
cd "$(dirname "$0")/.."

GORELEASER=github.com/goreleaser/goreleaser/v2@v2.15.1 # v2.16+ need go.digitalxero.dev (not on the proxy) or Go 1.27
SYFT=github.com/anchore/syft/cmd/syft@v1.57.1

mkdir -p .cache/bin
export GOBIN="$PWD/.cache/bin" PATH="$PWD/.cache/bin:$PATH"
install_go() { # binary module/cmd@version: go install unless that version is there
	local want=${2##*@} mod=${2%@*}
	if go version -m ".cache/bin/$1" 2>/dev/null | grep -q "	mod	.*	$want	"; then
		return
	fi
	echo "release-check: go install $2" >&2
	local t=$SECONDS
	go install "$mod@$want"
	echo "release-check: installed $1 in $((SECONDS - t))s" >&2
}
install_go goreleaser "$GORELEASER"
install_go syft "$SYFT"

goreleaser check
t=$SECONDS
goreleaser release --snapshot --clean --skip=publish,sign,docker
echo "release-check: snapshot built in $((SECONDS - t))s" >&2

version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' dist/metadata.json)
[ -n "$version" ] || { echo "release-check: no version in dist/metadata.json" >&2; exit 1; }
fail() { echo "release-check: $*" >&2; exit 1; }

# The linux/amd64 binary runs here.
bin=$(ls dist/docker-credential-cgr_linux_amd64*/docker-credential-cgr)
want="docker-credential-cgr (github.com/cgrtools/docker-credential-cgr) $version"
got=$("$bin" version)
[ "$got" = "$want" ] || fail "linux/amd64 version: got '$got', want '$want'"
echo "release-check: linux/amd64 runs: $got" >&2

# Every binary: its format (file, else Go's own reading of the headers), OS, arch, static.
n=0
for os in linux darwin windows; do
	for arch in amd64 arm64; do
		exe=docker-credential-cgr
		[ "$os" = windows ] && exe=$exe.exe
		b=$(ls dist/docker-credential-cgr_${os}_${arch}*/"$exe" 2>/dev/null) || fail "no $os/$arch binary"
		info=$(go version -m "$b")
		grep -q "build	GOOS=$os\$" <<<"$info" || fail "$b: not GOOS=$os"
		grep -q "build	GOARCH=$arch\$" <<<"$info" || fail "$b: not GOARCH=$arch"
		grep -q "build	CGO_ENABLED=0\$" <<<"$info" || fail "$b: not CGO_ENABLED=0"
		grep -q "build	-trimpath=true\$" <<<"$info" || fail "$b: not -trimpath"
		# (-trimpath keeps -ldflags out of the build info; look for the stamped string itself.)
		grep -qaF "$version" "$b" || fail "$b: version $version not stamped"
		if command -v file >/dev/null; then
			f=$(file -b "$b")
			case $os/$arch in
			linux/amd64) pat='ELF 64-bit.*x86-64.*statically linked' ;;
			linux/arm64) pat='ELF 64-bit.*ARM aarch64.*statically linked' ;;
			darwin/amd64) pat='Mach-O 64-bit x86_64 executable' ;;
			darwin/arm64) pat='Mach-O 64-bit arm64 executable' ;;
			windows/amd64) pat='PE32\+ executable.*x86-64' ;;
			windows/arm64) pat='PE32\+ executable.*Aarch64' ;;
			esac
			grep -Eq "$pat" <<<"$f" || fail "$b: '$f' is not $os/$arch ($pat)"
		fi
		n=$((n + 1))
	done
done
echo "release-check: $n binaries are the right format for their OS and arch" >&2

# Archives hold the binary; checksums match; every archive has an SBOM.
(cd dist && sha256sum --quiet -c checksums.txt) || fail "checksums.txt does not match"
archives=$(ls dist/*.tar.gz dist/*.zip)
for a in $archives; do
	case $a in
	*.zip) unzip -Z1 "$a" | grep -qx 'docker-credential-cgr.exe' || fail "$a: no docker-credential-cgr.exe" ;;
	*) tar -tzf "$a" | grep -qx 'docker-credential-cgr' || fail "$a: no docker-credential-cgr" ;;
	esac
	ls "$a".sbom.json >/dev/null 2>&1 || ls "${a%.*}"*.sbom.json >/dev/null 2>&1 || fail "$a: no SBOM"
done
echo "release-check: $(wc -w <<<"$archives") archives, checksums and SBOMs OK ($version)" >&2

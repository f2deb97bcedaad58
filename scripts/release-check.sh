#!/usr/bin/env bash
# Usage: scripts/release-check.sh
#
# Checks the release offline: installs goreleaser and syft (pinned, from the Go module proxy,
# into .cache/bin, once), validates .goreleaser.yaml, builds a snapshot release into dist/
# (every OS/arch, archives, .deb and .rpm, checksums, SBOMs; nothing is published or signed),
# then runs the linux/amd64 binary and checks every other binary is the right executable
# format for its OS and architecture, static and stamped with the version. The .deb is
# installed with dpkg (as root), run from /usr/bin and under sudo, its man page and bash
# completion used as man and bash-completion find them, then removed again; the .rpm's files
# and the binary's digest are read with rpm.
#
# Cost on the 2-core development machine: installing goreleaser 2m03s and syft 2m23s with
# an empty module cache (once; .cache/bin keeps them); the snapshot 1m45s with a cold Go
# build cache, 8s warm; the packages' checks about 10s more (dpkg -i and man-db's index).
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
# Under CI and make test (which install every tool) a check that cannot run fails; elsewhere
# it is skipped with the reason.
strict() { case "${CI:-}:${CGR_E2E_STRICT:-}" in *1* | *true*) return 0 ;; esac; return 1; }
cannot() {
	if strict; then fail "$* (scripts/deps.sh installs what is missing)"; fi
	echo "release-check: SKIPPED: $*" >&2
}

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
# action.yml downloads the archives by these names and checks them against checksums.txt.
for os in linux darwin windows; do
	for arch in amd64 arm64; do
		ext=tar.gz
		[ "$os" = windows ] && ext=zip
		f=docker-credential-cgr_${version}_${os}_${arch}.$ext
		grep -q "^[0-9a-f]\{64\}  $f\$" dist/checksums.txt || fail "action.yml's download $f is not in checksums.txt"
	done
done

# Build-time tools stay out of the shipped binary: the man pages' generator links cobra's doc
# package (go-md2man, blackfriday); the binary must not.
if go version -m "$bin" | grep -E '	(github.com/cpuguy83/go-md2man|github.com/russross/blackfriday)'; then
	fail "$bin links the man page generator's modules"
fi

# Packages: .deb and .rpm for linux/amd64 and arm64, in the checksums.
pkg=docker-credential-cgr
# (Their versions are the packagers' spelling: a snapshot's "-" is "~" there.)
pkgs=$(ls dist/${pkg}_*_amd64.deb dist/${pkg}_*_arm64.deb dist/${pkg}-*.x86_64.rpm dist/${pkg}-*.aarch64.rpm 2>/dev/null) || true
[ "$(wc -w <<<"$pkgs")" = 4 ] || fail "want a .deb and an .rpm for amd64 and arm64, got: $pkgs"
for f in $pkgs; do
	grep -q " ${f#dist/}\$" dist/checksums.txt || fail "${f#dist/} is not in checksums.txt"
done
deb=$(ls dist/${pkg}_*_amd64.deb)
common="/usr/bin/$pkg /usr/share/man/man1/$pkg.1.gz /usr/share/man/man1/$pkg-login.1.gz
/usr/share/bash-completion/completions/$pkg /usr/share/fish/vendor_completions.d/$pkg.fish"
has() { # listing path...: every path is in the listing
	local l=$1
	shift
	for f in "$@"; do grep -qx "$f" <<<"$l" || return 1; done
}
debfiles=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
has "$debfiles" $common /usr/share/zsh/vendor-completions/_$pkg /usr/share/doc/$pkg/copyright ||
	fail "$deb lacks some of $common (zsh: vendor-completions); it holds: $debfiles"
[ "$(dpkg-deb -f "$deb" Package Architecture | tr '\n' ' ')" = "Package: $pkg Architecture: amd64 " ] ||
	fail "$deb: control says $(dpkg-deb -f "$deb" Package Architecture)"

t=$SECONDS
if ! command -v rpm >/dev/null; then
	cannot "rpm is not installed: the .rpm's file list is unchecked"
else
	rpm_amd64=$(ls dist/${pkg}-*.x86_64.rpm)
	rpmfiles=$(rpm -qlp "$rpm_amd64" 2>/dev/null)
	has "$rpmfiles" $common /usr/share/zsh/site-functions/_$pkg /usr/share/licenses/$pkg/LICENSE ||
		fail "$rpm_amd64 lacks some of $common (zsh: site-functions); it holds: $rpmfiles"
	# The binary in the .rpm is the one built and checked above (rpm keeps sha256 digests).
	digest=$(rpm -qp --qf '[%{FILENAMES} %{FILEDIGESTS} %{FILEMODES:perms}\n]' "$rpm_amd64" 2>/dev/null | awk -v f="/usr/bin/$pkg" '$1 == f {print $2, $3}')
	[ "$digest" = "$(sha256sum "$bin" | cut -d' ' -f1) -rwxr-xr-x" ] ||
		fail "$rpm_amd64: /usr/bin/$pkg is '$digest', not the built binary with mode 0755"
	echo "release-check: the .rpm holds the binary, man pages and completions" >&2
fi

# The .deb installed as a user would (dpkg -i), used, then removed: the machine as before.
installed_version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
if [ "$(id -u)" != 0 ]; then
	cannot "not root: the .deb is not installed and run"
elif [ -e /usr/bin/$pkg ] && [[ "$installed_version" != *snapshot* ]]; then
	# Someone's real install (a package, or a copy): never replace or remove it.
	cannot "/usr/bin/$pkg is already there (package version '${installed_version:-none}'): the .deb is not installed over it"
elif ! command -v man >/dev/null || [ ! -f /usr/share/bash-completion/bash_completion ]; then
	cannot "man (man-db) or bash-completion is not installed: the .deb's man page and completion cannot be tried"
else
	trap 'dpkg -r "$pkg" >/dev/null 2>&1 || true' EXIT # a failed check still leaves nothing behind
	dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"
	got=$(/usr/bin/$pkg version) && [ "$got" = "$want" ] || fail "/usr/bin/$pkg version: got '$got', want '$want'"
	# /usr/bin is on sudo's secure_path: `sudo docker pull` finds the helper.
	if command -v sudo >/dev/null; then
		got=$(sudo -n env -u SUDO_UID $pkg version) && [ "$got" = "$want" ] || fail "sudo $pkg version: got '$got'"
	else
		cannot "sudo is not installed: secure_path unchecked"
	fi
	page=$(man -w $pkg) && [ "$page" = /usr/share/man/man1/$pkg.1.gz ] || fail "man -w $pkg: '$page'"
	MANPAGER=cat MANWIDTH=100 man $pkg 2>/dev/null | grep -q '^PROTOCOL ACTIONS' || fail "man $pkg: no PROTOCOL ACTIONS section"
	man -w $pkg-pull-token-create >/dev/null || fail "man -w $pkg-pull-token-create: no page"
	# bash-completion loads the file by the command's name on first use; the script asks the
	# installed binary for candidates.
	comp=$(bash --norc --noprofile -c '
		. /usr/share/bash-completion/bash_completion
		_completion_loader docker-credential-cgr
		fn=$(complete -p docker-credential-cgr 2>/dev/null | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		[ "$fn" = __start_docker-credential-cgr ] || exit 3 # not _minimal, its fallback
		COMP_LINE="docker-credential-cgr pull-t"; COMP_POINT=${#COMP_LINE}
		COMP_WORDS=(docker-credential-cgr pull-t); COMP_CWORD=1
		"$fn" docker-credential-cgr pull-t docker-credential-cgr
		printf "%s\n" "${COMPREPLY[@]}"') || fail "bash-completion did not load /usr/share/bash-completion/completions/$pkg (exit $?)"
	grep -qx 'pull-token' <<<"$comp" || fail "bash completion of 'docker-credential-cgr pull-t': got '$comp', want pull-token"
	dpkg -r "$pkg" >/dev/null || fail "dpkg -r $pkg failed"
	trap - EXIT
	[ ! -e /usr/bin/$pkg ] && [ ! -e /usr/share/man/man1/$pkg.1.gz ] && [ ! -e /usr/share/bash-completion/completions/$pkg ] ||
		fail "dpkg -r $pkg left files behind"
	[ -z "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -v not-installed)" ] || fail "dpkg still lists $pkg"
	echo "release-check: .deb installed, /usr/bin/$pkg and sudo $pkg run ($version), man page and bash completion found, removed again" >&2
fi
echo "release-check: packages checked in $((SECONDS - t))s" >&2

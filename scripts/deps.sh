#!/usr/bin/env bash
# Installs what the test suite and the demo need, idempotently: Debian packages (as root)
# and Go tools pinned by version into .cache/bin. Safe to run again; does nothing when all
# is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v podman >/dev/null || need_apt+=(podman)
command -v buildah >/dev/null || need_apt+=(buildah)
command -v gnome-keyring-daemon >/dev/null || need_apt+=(gnome-keyring)
command -v dbus-run-session >/dev/null || need_apt+=(dbus dbus-x11)
command -v secret-tool >/dev/null || need_apt+=(libsecret-tools)
command -v docker-credential-secretservice >/dev/null || need_apt+=(golang-docker-credential-helpers)
command -v docker >/dev/null || need_apt+=(docker.io)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
command -v curl >/dev/null || need_apt+=(curl)
command -v useradd >/dev/null || need_apt+=(passwd)
command -v sudo >/dev/null || need_apt+=(sudo)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v file >/dev/null || need_apt+=(file)         # release-check: binary formats
command -v rpm >/dev/null || need_apt+=(rpm)           # release-check: the .rpm's files
command -v man >/dev/null || need_apt+=(man-db)        # release-check: the .deb's man page
[ -f /usr/share/bash-completion/bash_completion ] || need_apt+=(bash-completion) # and its completion
[ -x /usr/bin/time ] || need_apt+=(time)               # bench: peak RSS
command -v strace >/dev/null || need_apt+=(strace)     # bench: network attempts of other helpers
[ -x /usr/bin/docker-compose ] || need_apt+=(docker-compose) # compose v1 (Python): one helper exec per service
command -v jq >/dev/null || need_apt+=(jq)             # doctor's DOCKER_AUTH_CONFIG fix, run as printed
command -v runc >/dev/null || need_apt+=(runc)         # buildkitd's worker
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
    exit 1
  fi
  echo "deps: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Go tools, pinned, built once into .cache/bin (docker CLI plugins into .cache/cli-plugins,
# which the tests link into each test world's $DOCKER_CONFIG/cli-plugins: the docker CLI looks
# there first, and the compose v2 plugin, also named docker-compose, must not shadow v1 on PATH).
# A tool is rebuilt only when the version it was built from is not the one named here.
# Cold build times on the 2-core machine (fresh module and build caches) are in README.md.
mkdir -p .cache/bin .cache/cli-plugins
built() { # binary version: whether go install built binary from that module version
  go version -m "$1" 2>/dev/null | grep -qE "^\s+mod\s+\S+\s+$2\s"
}
timed() { # name command...: runs command, says how long it took (the figures in README.md)
  local t=$SECONDS
  "${@:2}"
  echo "deps: built $1 in $((SECONDS - t))s" >&2
}
install_go() { # dest module/cmd@version [go install flags]: go install unless that version is there
  local want=${2##*@} tmp
  built "$1" "$want" && return
  echo "deps: go install $2" >&2
  tmp=$(mktemp -d)
  timed "$(basename "$1")" env GOBIN="$tmp" go install "${@:3}" "$2"
  mv "$tmp"/* "$1" && rmdir "$tmp"
}
# A module whose go.mod has exclude or replace directives (go install refuses it) is built
# from its own source in the module cache, as its own main module, with the versions it pins.
# Built as the main module, the binary records no module version (and -trimpath drops the
# -ldflags from its build info), so a stamp beside it says what it was built from.
build_module() { # dest module@version package ldflags
  local src
  [ -x "$1" ] && [ "$(cat "$1.built" 2>/dev/null)" = "$2" ] && return
  echo "deps: go build $2 ($3)" >&2
  src=$(go mod download -json "$2" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { echo "deps: go mod download $2 gave no source" >&2; exit 1; }
  timed "$(basename "$1")" env -C "$src" go build -trimpath -ldflags "$4" -o "$PWD/$1" "$3"
  printf '%s\n' "$2" >"$1.built"
}
B=.cache/bin P=.cache/cli-plugins
install_go $B/crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
install_go $B/helm helm.sh/helm/v3/cmd/helm@v3.22.0
install_go $B/helm4 helm.sh/helm/v4/cmd/helm@v4.3.2 # beside v3, which the helm tests keep
install_go $B/oras oras.land/oras/cmd/oras@v1.3.6
install_go $B/regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
install_go $B/ko github.com/google/ko@v0.19.1
install_go $B/cosign github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3
# buildx carries its version (compose refuses an unversioned buildx).
install_go $P/docker-buildx github.com/docker/buildx/cmd/buildx@v0.38.2 -ldflags "-X github.com/docker/buildx/version.Version=v0.38.2"
build_module $P/docker-compose github.com/docker/compose/v5@v5.6.0 ./cmd "-X github.com/docker/compose/v5/internal.Version=v5.6.0"
# BuildKit's own daemon, the version buildx v0.38.2 pins, for buildx's remote driver: there
# BuildKit pushes with the credentials it keeps from the helper (the docker driver leaves the
# push to the Engine, which gets a fresh answer).
build_module $B/buildkitd github.com/moby/buildkit@v0.34.2 ./cmd/buildkitd "-X github.com/moby/buildkit/version.Version=v0.34.2"

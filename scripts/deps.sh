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

# Go tools, pinned, built once into .cache/bin.
mkdir -p .cache/bin
export GOBIN="$PWD/.cache/bin"
install_go() { # name module@version
  [ -x ".cache/bin/$1" ] || { echo "deps: go install $2" >&2; go install "$2"; }
}
install_go crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
install_go helm helm.sh/helm/v3/cmd/helm@v3.22.0

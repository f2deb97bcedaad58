#!/bin/sh
# Usage: scripts/with-keyring.sh CMD [ARG...]
#
# Runs CMD with a real, unlocked Secret Service (gnome-keyring) on a private session bus
# and exports CGR_TEST_KEYRING=1, so the keystore's keychain tests run instead of skipping.
# Needs: dbus-run-session (dbus-x11 or dbus-daemon), gnome-keyring, libsecret-tools.
#
# The keyring is always a throwaway one: a fresh gnome-keyring-daemon on a fresh
# dbus-run-session bus, with XDG_DATA_HOME and XDG_RUNTIME_DIR in a temp dir (HOME is left
# alone). Even on a desktop with a usable session bus we do not use the user's own
# keyring, because the tests write to it, delete all docker-credential-cgr items and lock
# the default collection.
set -eu

if [ "$#" -eq 0 ]; then
	echo "usage: $0 CMD [ARG...]" >&2
	exit 2
fi

if [ "${_CGR_WITH_KEYRING_INNER:-}" != 1 ]; then
	for c in dbus-run-session gnome-keyring-daemon secret-tool; do
		command -v "$c" >/dev/null 2>&1 || {
			echo "$0: $c not found (apt-get install dbus-x11 gnome-keyring libsecret-tools)" >&2
			exit 1
		}
	done
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/cgr-keyring.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT INT TERM
	mkdir -m 0700 "$tmp/run" "$tmp/data"
	# A throwaway password for the throwaway login keyring; the locked-keyring test uses
	# it to unlock the keyring again after locking it.
	CGR_TEST_KEYRING_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	export CGR_TEST_KEYRING_PASSWORD
	rc=0
	_CGR_WITH_KEYRING_INNER=1 XDG_RUNTIME_DIR="$tmp/run" XDG_DATA_HOME="$tmp/data" \
		dbus-run-session -- "$0" "$@" || rc=$?
	exit "$rc"
fi

# Inside the private bus: start the keyring with a fresh, unlocked "login" collection.
unset _CGR_WITH_KEYRING_INNER
printf '%s' "$CGR_TEST_KEYRING_PASSWORD" |
	gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null

prop() {
	dbus-send --session --print-reply --dest=org.freedesktop.secrets "$1" \
		org.freedesktop.DBus.Properties.Get "string:$2" "string:$3" 2>/dev/null
}
i=0
until prop /org/freedesktop/secrets/collection/login org.freedesktop.Secret.Collection Locked |
	grep -q 'boolean false'; do
	i=$((i + 1))
	if [ "$i" -gt 100 ]; then
		echo "$0: the gnome-keyring login collection did not appear unlocked" >&2
		exit 1
	fi
	sleep 0.05
done

# A round trip through libsecret proves the collection takes and returns items.
printf 'probe-value' | secret-tool store --label=cgr-probe cgr-with-keyring probe
if [ "$(secret-tool lookup cgr-with-keyring probe)" != probe-value ]; then
	echo "$0: the Secret Service does not return what was stored" >&2
	exit 1
fi
secret-tool clear cgr-with-keyring probe

export CGR_TEST_KEYRING=1
exec "$@"

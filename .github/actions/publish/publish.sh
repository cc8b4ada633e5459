#!/usr/bin/env bash
# Publish the fleet as plain shell (the `publish` action runs it; docs/forge.md shows it on
# other CI systems): install an exact linefleet, write the signing key to a private file, and
# publish the CURRENT tip of BRANCH (so a queued or re-run job never publishes an older commit).
# The key file is removed on every exit path.
#
#   BROKER           mqtt://HOST:PORT or mqtts://HOST:PORT
#   SIGNING_KEY_PEM  the Ed25519 private key (PEM text, from a CI secret)
#   FLEET_REPO       the fleet repository (default: .)
#   BRANCH           the branch to publish (default: main); fetched from origin when there is one
#   FORGE            optional: where to read who merged the commit (github://OWNER/REPO, with
#                    GITHUB_TOKEN); without it the git committer is named
#   OUT              results folder (default: ./linefleet-publish): publish.json, venv/
#   and the install settings of ../lib/install.sh (LINEFLEET_VERSION or LINEFLEET_PACKAGE, ...).
# Exit: that of `linefleet publish` (0 ok, 1 invalid fleet, 4 broker unreachable); 2 setup.
set -uo pipefail

: "${BROKER:?mqtt://HOST:PORT}" "${SIGNING_KEY_PEM:?the signing key (PEM)}"
FLEET_REPO="${FLEET_REPO:-.}"
BRANCH="${BRANCH:-main}"
OUT="${OUT:-linefleet-publish}"
EXTRA=control
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd -P)"
REPO="$(cd "$FLEET_REPO" && pwd -P)" || exit 2
# shellcheck source=../lib/install.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/install.sh"
linefleet_install

key="$(umask 077 && mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/linefleet-signing-key.XXXXXX")" || exit 2
trap 'rm -f "$key"' EXIT
printf '%s\n' "$SIGNING_KEY_PEM" > "$key"

rev="$BRANCH"
if git -C "$REPO" remote get-url origin > /dev/null 2>&1; then
  git -C "$REPO" fetch --quiet origin "$BRANCH" || exit 4
  rev="origin/$BRANCH"
fi
forge=()
[ -n "${FORGE:-}" ] && forge=(--forge "$FORGE")
lf publish --broker "$BROKER" --signing-key "$key" --repo "$REPO" --rev "$rev" "${forge[@]}" \
  --format json > "$OUT/publish.json"
rc=$?
cat "$OUT/publish.json"
exit "$rc"

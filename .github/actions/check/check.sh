#!/usr/bin/env bash
# The fleet pull-request check as plain shell (the `check` action runs it; docs/forge.md shows
# it on other CI systems). Installs an exact linefleet that does not come from the change, then
# checks the change against its base: validate (schema, references, rollout policy), plan,
# CODEOWNERS. Writes OUT/validate.txt, OUT/plan.md, OUT/codeowners.txt and OUT/comment.md (the
# pull-request comment), and appends the comment to $GITHUB_STEP_SUMMARY when that is set.
#
#   FLEET_REPO   the change: a checkout of the pull request (merge commit, full history); data only
#   BASE_REV     the revision it merges into, e.g. origin/main
#   OUT          results folder (default: ./linefleet-check, created)
#   HEAD_SHA     shown at the end of the comment (default: FLEET_REPO's HEAD)
#   and the install settings of ../lib/install.sh (LINEFLEET_VERSION or LINEFLEET_PACKAGE, ...).
# Exit 0: valid; 1: the change is refused (the files above say why); 2: setup failed.
set -uo pipefail

: "${FLEET_REPO:?the pull request checkout}" "${BASE_REV:?the base revision, e.g. origin/main}"
OUT="${OUT:-linefleet-check}"
EXTRA=control
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd -P)"
REPO="$(cd "$FLEET_REPO" && pwd -P)" || exit 2
# shellcheck source=../lib/install.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/install.sh"
linefleet_install

validate=success plan=success codeowners=success
lf validate --repo "$REPO" --base "$BASE_REV" > "$OUT/validate.txt" || validate=failure
cat "$OUT/validate.txt"
lf plan --repo "$REPO" --base "$BASE_REV" --format markdown --out "$OUT/plan.md" || plan=failure
lf codeowners --repo "$REPO" --check > "$OUT/codeowners.txt" 2>&1 || codeowners=failure
cat "$OUT/codeowners.txt"

head_sha="${HEAD_SHA:-$(git -C "$REPO" rev-parse HEAD)}"
{
  if [ "$validate" = success ]; then
    echo "#### linefleet validate: :white_check_mark: valid"
  else
    echo "#### linefleet validate: :x: invalid"
  fi
  echo
  echo '<details><summary>findings</summary>'
  echo
  echo '```text'
  cat "$OUT/validate.txt"
  echo '```'
  echo '</details>'
  echo
  if [ "$plan" = success ] && [ -s "$OUT/plan.md" ]; then
    cat "$OUT/plan.md"
  else
    echo "_No plan: \`linefleet plan\` failed; see the job log._"
  fi
  echo
  if [ "$codeowners" != success ]; then
    echo ":warning: \`.github/CODEOWNERS\` is stale: run \`linefleet codeowners\` and commit it."
    echo
  fi
  echo "<sub>for ${head_sha}, checked by $(lf --version 2>/dev/null || echo linefleet)</sub>"
} > "$OUT/comment.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$OUT/comment.md" >> "$GITHUB_STEP_SUMMARY"
fi

echo "validate: $validate, plan: $plan, codeowners: $codeowners"
if [ "$validate$plan$codeowners" != successsuccesssuccess ]; then
  exit 1
fi

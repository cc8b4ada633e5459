# Sourced by check.sh and publish.sh: install an exact linefleet, never code from the fleet
# repository being checked or published, and set LF to its `linefleet` executable.
#
#   LINEFLEET_VERSION   exact version: installs linefleet[EXTRA]==VERSION (no ranges)
#   LINEFLEET_PACKAGE   instead: a pip requirement or a linefleet source tree (linefleet's own
#                       repository passes its base-branch checkout); never inside FLEET_REPO
#   LINEFLEET_PYTHON    the interpreter to install into (default: a new virtualenv in OUT/venv)
#   LINEFLEET_PIP_ARGS  extra pip arguments, e.g. "--no-index --find-links /wheels"
# Needs: OUT (a folder for results), FLEET_REPO, EXTRA (pip extra, e.g. control).

fail_setup() {
  echo "linefleet: $*" >&2
  exit 2
}

linefleet_install() {
  local repo req python real
  repo="$(cd "$FLEET_REPO" 2>/dev/null && pwd -P)" || fail_setup "FLEET_REPO ${FLEET_REPO}: no such directory"
  if [ -n "${LINEFLEET_PACKAGE:-}" ]; then
    req="$LINEFLEET_PACKAGE"
    if [ -e "$req" ]; then
      real="$(cd "$req" 2>/dev/null && pwd -P || realpath "$req")"
      case "$real/" in
        "$repo"/*) fail_setup "refusing to install linefleet from ${req}: it lies inside the repository being checked (${repo})" ;;
      esac
      [ -d "$real" ] && req="${real}[${EXTRA}]"
    fi
  elif [ -n "${LINEFLEET_VERSION:-}" ]; then
    [[ "$LINEFLEET_VERSION" =~ ^[0-9]+(\.[0-9]+)*([abc]|rc|\.post|\.dev)?[0-9]*$ ]] \
      || fail_setup "LINEFLEET_VERSION ${LINEFLEET_VERSION}: an exact version, like 0.1.0"
    req="linefleet[${EXTRA}]==${LINEFLEET_VERSION}"
  else
    fail_setup "set LINEFLEET_VERSION (an exact version) or LINEFLEET_PACKAGE"
  fi
  python="${LINEFLEET_PYTHON:-}"
  if [ -z "$python" ]; then
    python3 -m venv "$OUT/venv" || fail_setup "could not create a virtualenv in $OUT/venv"
    python="$OUT/venv/bin/python"
  fi
  # From OUT, without PYTHONPATH: nothing of the fleet repository is importable.
  # shellcheck disable=SC2086 # LINEFLEET_PIP_ARGS is a list of arguments
  (cd "$OUT" && env -u PYTHONPATH "$python" -m pip install --quiet --disable-pip-version-check \
    ${LINEFLEET_PIP_ARGS:-} "$req") || fail_setup "pip install ${req} failed"
  LF="$(dirname "$python")/linefleet"
  [ -x "$LF" ] || fail_setup "no linefleet executable next to $python"
  local where
  where="$(cd "$OUT" && env -u PYTHONPATH PYTHONSAFEPATH=1 "$python" -c \
    'import linefleet, reconciler; print(linefleet.__file__); print(reconciler.__file__)')" \
    || fail_setup "the installed linefleet does not import"
  case "$where" in
    *"$repo"/*) fail_setup "linefleet would run from the repository being checked: $where" ;;
  esac
  echo "linefleet from ${req}: $(head -n 1 <<<"$where")"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "linefleet=$LF" >> "$GITHUB_OUTPUT"
  fi
}

# Run the installed linefleet from OUT, never with the fleet repository on the import path.
lf() {
  (cd "$OUT" && env -u PYTHONPATH PYTHONSAFEPATH=1 "$LF" "$@")
}

# Sourced by scripts/test.sh and scripts/quickstart.sh: installs the Debian
# packages a script lists in PACKAGES that are not installed yet. The caller
# defines PACKAGES (array) and say(), and may define COMMAND_PACKAGES (array of
# COMMAND=PACKAGE): PACKAGE is installed only when COMMAND is not on PATH. That
# is for tools another package may already provide: Node.js from another
# source bundles npm and conflicts with Debian's npm package, and any JDK
# provides javac.

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "not root and no sudo: cannot run $*" >&2
    return 1
  fi
}

install_missing() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "no dpkg: not a Debian system, skipping package installation"
    return 0
  fi
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  local entry
  for entry in ${COMMAND_PACKAGES[@]+"${COMMAND_PACKAGES[@]}"}; do
    if ! command -v "${entry%%=*}" >/dev/null 2>&1; then
      missing+=("${entry#*=}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    say "all packages present"
    return 0
  fi
  say "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"
}

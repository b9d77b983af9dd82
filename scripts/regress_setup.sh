#!/usr/bin/env bash
# Prepares PostgreSQL 15's regression suite for tests/regress/run_regress.py (issue 17).
#
# Idempotent, bounded in time, runs as root (or through sudo) on Debian 12:
#   1. adds deb-src entries for the Debian mirrors apt already uses (one-line
#      sources.list files and deb822 .sources files; only stanzas of this
#      release's suites, so third-party repositories are left alone) when none
#      is there yet, and runs `apt-get update` only when source indexes are missing;
#   2. installs dpkg-dev (for apt-get source), make/gcc and postgresql-server-dev-15
#      (the PGXS headers), at the installed server's version when Debian still has it;
#   3. `apt-get source postgresql-15` at the installed server's version into the cache
#      directory, else at another 15.x version apt knows (a mirror may have dropped the
#      files of the version its index names); never downloaded again once extracted;
#   4. builds regress.so (src/test/regress/regress.c) and the two contrib/spi modules the
#      suite loads (refint.so, autoinc.so) with PGXS into CACHE/lib, the suite's --dlpath;
#   5. writes CACHE/regress.env, which the driver and tests/integration/test_pg_regress.py
#      read (its absence means "setup not run").
# Nothing else is downloaded. pg_regress itself comes with postgresql-client-15 at
# /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress.
#
# Environment: PGREGION_REGRESS_DIR (default /var/cache/pgregion-regress),
#              PGREGION_SETUP_TIMEOUT per apt step in seconds (default 600).
set -euo pipefail

CACHE=${PGREGION_REGRESS_DIR:-/var/cache/pgregion-regress}
STEP_TIMEOUT=${PGREGION_SETUP_TIMEOUT:-600}
PG_MAJOR=15
PG_LIB=/usr/lib/postgresql/$PG_MAJOR/lib
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PG_REGRESS=$PG_LIB/pgxs/src/test/regress/pg_regress
SRC_LIST=/etc/apt/sources.list.d/pgregion-deb-src.list
SRC_DEB822=/etc/apt/sources.list.d/pgregion-deb-src.sources

say() { printf 'regress_setup: %s\n' "$*"; }
die() { printf 'regress_setup: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "needs root or sudo"
  SUDO=(sudo -n)
fi
as_root() { "${SUDO[@]}" "$@"; }
apt_get() {
  as_root env DEBIAN_FRONTEND=noninteractive timeout "$STEP_TIMEOUT" \
    apt-get -o DPkg::Lock::Timeout=120 "$@"
}

[[ -x /usr/lib/postgresql/$PG_MAJOR/bin/postgres ]] \
  || die "PostgreSQL $PG_MAJOR is not installed (scripts/test.sh installs it)"

# ---- 1. deb-src entries --------------------------------------------------------------
# Prints the deb-src entries to add: one-line entries on stdout as "L <line>", deb822
# stanzas as "S <stanza with \n escaped>". Only stanzas/lines of this release (suite
# name starting with the codename) and not already present as deb-src.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || die "no VERSION_CODENAME in /etc/os-release"
missing_src=$(/usr/bin/python3 - "$codename" "$SRC_LIST" "$SRC_DEB822" <<'EOF'
import glob, os, re, sys
codename, own_list, own_deb822 = sys.argv[1:4]
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) \
    + sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
deb, src = [], set()  # deb: (kind, key, payload); src: keys (uri, suite)
for path in files:
    if not os.path.isfile(path):
        continue
    text = open(path, errors="replace").read()
    if path.endswith(".list"):
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^(deb|deb-src)\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if not m:
                continue
            kind, opts, uri, suite, comps = m.groups()
            key = (uri.rstrip("/"), suite)
            if kind == "deb-src":
                src.add(key)
            elif suite.startswith(codename) and path != own_list:
                deb.append(("L", key, f"deb-src {opts or ''}{uri} {suite} {comps}".strip()))
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields, last = {}, None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and last:
                fields[last] += "\n" + raw
                continue
            k, _, v = raw.partition(":")
            last = k.strip().lower()
            fields[last] = v.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        types = fields.get("types", "").split()
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        keys = [(u.rstrip("/"), s) for u in uris for s in suites]
        if "deb-src" in types:
            src.update(keys)
        if "deb" in types and path != own_deb822 and any(s.startswith(codename) for s in suites):
            lines = [l for l in stanza.splitlines() if not l.startswith("#") and l.strip()]
            out = []
            for l in lines:
                if l.lower().startswith("types:"):
                    out.append("Types: deb-src")
                elif l.lower().startswith("suites:"):
                    out.append("Suites: " + " ".join(s for s in suites if s.startswith(codename)))
                else:
                    out.append(l)
            for key in keys:
                if key[1].startswith(codename):
                    deb.append(("S", key, "\\n".join(out)))
seen = set()
for kind, key, payload in deb:
    if key in src or payload in seen:
        continue
    seen.add(payload)
    print(kind, payload)
EOF
)
if [[ -n $missing_src ]]; then
  list_lines=$(sed -n 's/^L //p' <<<"$missing_src")
  stanzas=$(sed -n 's/^S //p' <<<"$missing_src" | awk '{gsub(/\\n/, "\n"); print; print ""}')
  if [[ -n $list_lines ]]; then
    say "adding deb-src lines to $SRC_LIST"
    { echo "# added by pgregion scripts/regress_setup.sh"; cat <<<"$list_lines"; } \
      | as_root tee -a "$SRC_LIST" >/dev/null
  fi
  if [[ -n $stanzas ]]; then
    say "adding deb-src stanzas to $SRC_DEB822"
    { echo "# added by pgregion scripts/regress_setup.sh"; cat <<<"$stanzas"; } \
      | as_root tee -a "$SRC_DEB822" >/dev/null
  fi
fi
# (Captured, not piped into grep -q: with pipefail an early grep exit fails the pipe.)
showsrc() { apt-cache showsrc "postgresql-$PG_MAJOR" 2>/dev/null || true; }
if [[ -n $missing_src ]] || [[ $(showsrc) != *"Package: "* ]]; then
  say "apt-get update (source indexes)"
  apt_get update -q >/dev/null || die "apt-get update failed"
fi
src_info=$(showsrc)
[[ $src_info == *"Package: "* ]] \
  || die "apt knows no source package postgresql-$PG_MAJOR (deb-src entries: $SRC_LIST $SRC_DEB822)"

# ---- 2. packages ---------------------------------------------------------------------
installed=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null || true)
[[ -n $installed ]] || die "package postgresql-$PG_MAJOR is not installed"
# The source and the server headers at the installed server's version when Debian still
# has it (a security update may have moved the candidate on), else the candidate.
src_version=$installed
if ! grep -qx "Version: $installed" <<<"$src_info"; then
  src_version=$(sed -n 's/^Version: //p' <<<"$src_info" | sort -V | tail -1)
  say "source $installed is gone from the mirror; using $src_version"
fi
need=()
for p in dpkg-dev make gcc; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *"ok installed"* ]] || need+=("$p")
done
if [[ $(dpkg-query -W -f='${Status}' "postgresql-server-dev-$PG_MAJOR" 2>/dev/null) \
      != *"ok installed"* ]]; then
  if [[ $(apt-cache madison "postgresql-server-dev-$PG_MAJOR") == *"| $installed |"* ]]; then
    need+=("postgresql-server-dev-$PG_MAJOR=$installed")
  else
    need+=("postgresql-server-dev-$PG_MAJOR")
  fi
fi
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt_get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed"
fi

# ---- 3. source -----------------------------------------------------------------------
# The suite's statements are compared between a direct and a proxied connection to the same
# server, not against expected files, so any 15.x source serves. The installed server's
# version comes first; a mirror may list a version in its index whose files it no longer has
# (seen in CI: the security pool answered 404 for every file of the version its index
# named), so the other versions apt knows follow, newest first. An already extracted tree
# of any of them is used as it is.
as_root mkdir -p "$CACHE"
as_root chmod 755 "$CACHE"
mapfile -t versions < <({ echo "$src_version"; sed -n 's/^Version: //p' <<<"$src_info" \
  | sort -Vr; } | awk '!seen[$0]++')
srcdir=
for v in "${versions[@]}"; do
  candidate=$CACHE/postgresql-$PG_MAJOR-${v%%-*}
  if [[ -f $candidate/src/test/regress/parallel_schedule ]]; then
    srcdir=$candidate src_version=$v
    break
  fi
done
if [[ -z $srcdir ]]; then
  for v in "${versions[@]}"; do
    say "apt-get source postgresql-$PG_MAJOR=$v into $CACHE"
    # A fresh directory per attempt: a failed download leaves no partial files behind.
    work=$CACHE/download
    as_root rm -rf "$work"
    as_root mkdir -p "$work"
    if (cd "$work" && apt_get source -q "postgresql-$PG_MAJOR=$v" >/dev/null); then
      tree=$work/postgresql-$PG_MAJOR-${v%%-*}
      if [[ -f $tree/src/test/regress/parallel_schedule ]]; then
        srcdir=$CACHE/postgresql-$PG_MAJOR-${v%%-*}
        as_root rm -rf "$srcdir"
        as_root mv "$tree" "$srcdir"
        src_version=$v
        as_root rm -rf "$work"
        break
      fi
      say "postgresql-$PG_MAJOR=$v has no src/test/regress"
    else
      say "apt-get source postgresql-$PG_MAJOR=$v failed; trying the next version"
    fi
    as_root rm -rf "$work"
  done
  [[ -n $srcdir ]] || die "apt-get source postgresql-$PG_MAJOR failed for ${versions[*]}"
fi
[[ $src_version == "$installed" ]] || say "source $src_version for server $installed"

# ---- 4. modules ----------------------------------------------------------------------
libdir=$CACHE/lib
as_root mkdir -p "$libdir"
stamp=$libdir/.built-from
# The suite's own build compiles refint with -DREFINT_VERBOSE (src/test/regress/GNUmakefile):
# triggers.out expects its NOTICEs. Debian's contrib refint.so is built without it.
stamp_text="$srcdir REFINT_VERBOSE"
if [[ ! -f $libdir/regress.so || ! -f $libdir/refint.so || ! -f $libdir/autoinc.so \
      || "$(cat "$stamp" 2>/dev/null)" != "$stamp_text" ]]; then
  say "building regress.so, refint.so, autoinc.so with PGXS"
  build=$CACHE/build
  as_root rm -rf "$build"
  as_root mkdir -p "$build"
  as_root cp "$srcdir/src/test/regress/regress.c" "$srcdir/contrib/spi/refint.c" \
    "$srcdir/contrib/spi/autoinc.c" "$build/"
  printf '%s\n' "MODULES = regress refint autoinc" "PG_CONFIG = $PG_CONFIG" \
    "PG_CPPFLAGS = -DREFINT_VERBOSE" \
    "PGXS := \$(shell \$(PG_CONFIG) --pgxs)" "include \$(PGXS)" \
    | as_root tee "$build/Makefile" >/dev/null
  as_root timeout "$STEP_TIMEOUT" make -s -C "$build" >/dev/null || die "module build failed"
  for so in regress.so refint.so autoinc.so; do
    # cp then rename: a server that has the old file mapped keeps its copy intact.
    as_root cp "$build/$so" "$libdir/$so.new"
    as_root mv -f "$libdir/$so.new" "$libdir/$so"
  done
  echo "$stamp_text" | as_root tee "$stamp" >/dev/null
fi
as_root chmod -R a+rX "$CACHE"
[[ -x $PG_REGRESS ]] || die "no pg_regress at $PG_REGRESS (package postgresql-client-$PG_MAJOR)"

# ---- 5. where things are -------------------------------------------------------------
printf '%s\n' "# written by scripts/regress_setup.sh" \
  "PG_VERSION_INSTALLED=$installed" "PG_VERSION_SOURCE=$src_version" \
  "REGRESS_SRCDIR=$srcdir/src/test/regress" "REGRESS_DLPATH=$libdir" \
  "PG_REGRESS=$PG_REGRESS" "PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin" \
  | as_root tee "$CACHE/regress.env.tmp" >/dev/null
as_root mv "$CACHE/regress.env.tmp" "$CACHE/regress.env"
say "server $installed, source $src_version"
say "suite:      $srcdir/src/test/regress (parallel_schedule)"
say "modules:    $libdir (regress.so refint.so autoinc.so)"
say "pg_regress: $PG_REGRESS"
say "env file:   $CACHE/regress.env"

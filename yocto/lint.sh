#!/usr/bin/env bash
# Lints the meta-convoy layer without bitbake:
#   1. the crates .inc must match the workspace's Cargo.lock (scripts/gen-crates-inc.py --check);
#   2. oelint-adv (a pinned version, in a venv under the cache directory) on every recipe,
#      append, class and include file of the layer and on its conf/ files.
# Exits non-zero on any finding. Needs python3 (3.11 or newer) with venv, and PyPI the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# oelint-adv and the two packages its findings depend on (parser, variable data), pinned so that
# a new release cannot change the verdict on unchanged files.
OELINT_ADV_VERSION="9.11.2"
OELINT_PINS=("oelint-adv==$OELINT_ADV_VERSION" "oelint-parser==8.13.2" "oelint-data==1.5.26")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/convoy-oelint"
venv="$cache/$(printf '%s\n' "${OELINT_PINS[@]}" | sha256sum | cut -c1-12)"

python3 "$here/scripts/gen-crates-inc.py" --check

if [ ! -x "$venv/bin/oelint-adv" ]; then
  echo "lint: installing ${OELINT_PINS[*]} into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${OELINT_PINS[@]}"
fi

# Recipes, appends, classes and includes, and the layer's bitbake configuration (conf/, not the
# systemd drop-in under files/).
mapfile -t files < <(find "$here/meta-convoy" -type f \( -name '*.bb' -o -name '*.bbappend' \
  -o -name '*.bbclass' -o -name '*.inc' -o -path "$here/meta-convoy/conf/*.conf" \) | sort)

# Suppressed rules, each for a reason:
suppress=(
  # No network look-ups from CI (the project has no public home page yet either).
  oelint.vars.homepageping
  # The Convoy repository has no license files yet (Cargo.toml only says "MIT OR Apache-2.0"),
  # so LIC_FILES_CHKSUM points at the common license texts. Add LICENSE-MIT and LICENSE-APACHE
  # to the repository, point LIC_FILES_CHKSUM at them and drop this line.
  oelint.var.licenseremotefile
  # convoy-edge is a target service (systemd unit, system user, /etc config): a native or
  # nativesdk variant would make no sense, so it sets no BBCLASSEXTEND.
  oelint.var.bbclassextend
)
# meta-convoy/oelint.constants.json (read by oelint-adv itself) declares variables its data does
# not know (EXTERNALSRC_SYMLINKS, IMAGE_ROOTFS_MAXSIZE) and meta-freescale's overrides (mx8mp).

# oelint-adv's exit status is its number of findings, which wraps at 256: judge by its output.
out="$("$venv/bin/oelint-adv" --quiet --release scarthgap "${suppress[@]/#/--suppress=}" "${files[@]}" 2>&1)" \
  && status=0 || status=$?
if [ -n "$out" ] || [ "$status" -ne 0 ]; then
  printf '%s\n' "$out"
  echo "lint: oelint-adv found problems in meta-convoy (exit status $status)" >&2
  exit 1
fi
echo "lint: meta-convoy is clean (${#files[@]} files, oelint-adv $OELINT_ADV_VERSION)"

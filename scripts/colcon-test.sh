#!/usr/bin/env bash
# `colcon build` + `colcon test` of rldt_ros as on a robot computer: a separate venv WITHOUT
# torch (.venv-colcon: colcon, the ROS 2 Kilted wheels pinned in setup.py, onnxruntime, numpy,
# yaml, opencv, mujoco, pytest, onnx), a workspace in .colcon/, tests inside a loopback-only
# network namespace. Fails if torch is importable, if the install holds the training side, or if
# any colcon test fails. Idempotent: a second run reuses the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PY:-python3.11}
VENV=$REPO/.venv-colcon
STAMP=$VENV/.installed-$(cat setup.py scripts/colcon-test.sh | sha1sum | cut -c1-10)

if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || $PY -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # shellcheck disable=SC2046  # one word per pinned ROS wheel
  "$VENV/bin/pip" install -q colcon-core colcon-ros colcon-python-setup-py colcon-bash \
    colcon-test-result ros-ament-package ros-ament-index-python \
    $(grep -o "'ros-[a-z-]*\(\[[a-z]*\]\)\?==[0-9.]*'" setup.py | tr -d "'") \
    onnxruntime numpy pyyaml opencv-python-headless mujoco==4.0.0 pytest pytest-timeout onnx ruff
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "colcon-test: torch is importable in $VENV; the robot side must not need it" >&2
  exit 1
fi

rm -rf .colcon
mkdir .colcon
cd .colcon
# shellcheck disable=SC1091
source "$VENV/bin/activate"
colcon build --base-paths "$REPO"
site=install/rldt_ros/lib/python3.11/site-packages
test -x install/rldt_ros/lib/rldt_ros/policy_node
test -f install/rldt_ros/share/rldt_ros/launch/policy.launch.py
if [ -e install/rldt_ros/lib/rldt_ros/rldt-train ] || [ -e "$site/rldt_train" ]; then
  echo "colcon-test: the install space holds the training side (rldt_train)" >&2
  exit 1
fi
# The installed executable, as a user runs it after sourcing the workspace, refuses a model
# folder that is not there, in one line.
set +eu
# shellcheck disable=SC1091
source install/setup.bash
bash "$REPO/scripts/loopback.sh" install/rldt_ros/lib/rldt_ros/policy_node --ros-args \
  -p model:=/nonexistent 2>err.txt
code=$?
set -eu
if [ $code -ne 1 ] || ! grep -q 'cannot start.*does not exist' err.txt; then
  echo "colcon-test: installed policy_node did not refuse a missing model (exit $code)" >&2
  cat err.txt >&2
  exit 1
fi
# colcon test reads pytest from setup.py's `test` extra; tests need the loopback namespace.
set +e
bash "$REPO/scripts/loopback.sh" colcon test --base-paths "$REPO" \
  --event-handlers console_direct+ --return-code-on-test-failure
code=$?
set -e
colcon test-result --verbose || true
exit $code

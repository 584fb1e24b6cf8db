#!/usr/bin/env bash
# Start the rvcd daemon on a configuration (default configs/default.yaml). When no JACK
# server is reachable, start one with the dummy backend first (headless machines, demos)
# and stop it again when rvcd exits. Extra arguments go to `rvcd run`.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${RVCD_CONFIG:-configs/default.yaml}
started=""
if ! .venv/bin/python -c "import jack, sys; jack.Client('rvcd-probe', no_start_server=True).close()" 2>/dev/null; then
    if ! command -v jackd >/dev/null; then
        echo "[run] no JACK server is running and jackd is not installed (apt-get install jackd2)" >&2
        exit 1
    fi
    echo "[run] no JACK server is running: starting jackd with the dummy backend (48 kHz, 256 frames)" >&2
    jackd --no-realtime -d dummy -r 48000 -p 256 >/tmp/rvcd-jackd.log 2>&1 &
    started=$!
    trap 'kill "$started" 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM
    for _ in $(seq 50); do
        .venv/bin/python -c "import jack; jack.Client('rvcd-probe', no_start_server=True).close()" 2>/dev/null && break
        sleep 0.1
    done
fi
status=0
.venv/bin/rvcd run --config "$config" "$@" || status=$?
exit "$status"

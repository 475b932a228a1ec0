#!/usr/bin/env bash
# Sets up everything vpclab needs on a fresh Debian/Ubuntu machine, idempotently:
#   1. the Debian packages (as root; otherwise it names the ones missing and stops),
#   2. a virtualenv in .venv/ at the repository root,
#   3. vpclab itself, built into it (the C engine is compiled by the package build).
# Steps 2 and 3 are skipped, silently, when nothing they depend on changed since the last
# run into this VENV_DIR: the stamp $VENV_DIR/.vpclab-setup holds a hash of the Python
# version, pyproject.toml, setup.py, this script and native/'s C and Python sources (the
# editable install needs no rebuild for a Python change). The sanitizer build is a regular
# install, a copy of every source, so it is always rebuilt.
# Usage: tools/setup.sh [VENV_DIR]    (VPCLAB_SANITIZE=1 builds the engine with ASan/UBSan;
#                                      VPCLAB_SETUP_FORCE=1 rebuilds whatever the stamp says)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
stamp=$venv/.vpclab-setup

# gcc/python3-dev: the engine; clang-14 and libclang-rt-14-dev (which holds libFuzzer's
# runtime, libclang_rt.fuzzer): `make fuzz`; the rest are the tools labs, tests and
# benchmarks run; haproxy, wrk and nghttp2-client (h2load) are the HTTP references and
# load generators of API Gateway's benchmark; graphviz's `dot` checks `vpclab graph`'s output;
# tshark reads the pcapng `vpclab capture --hyperplane` writes (its tests check the comments);
# valgrind counts the tap's cost in instructions (bench/test_tap_cost.py).
apt_packages=(gcc make python3-venv python3-dev iproute2 nftables tcpdump iperf3
              netsniff-ng dnsmasq-base curl procps iputils-ping clang-14 libclang-rt-14-dev
              haproxy wrk nghttp2-client ca-certificates graphviz tshark valgrind)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark's wireshark-common asks whether non-root users may capture: no, and no question.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: $python is $("$python" --version 2>&1); vpclab needs Python 3.11 or newer" >&2
    exit 1
fi
fingerprint=$({ "$python" --version 2>&1
                cat pyproject.toml setup.py tools/setup.sh
                find native -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name '*.py' \) \
                    | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1)
# The editable install's engine lives in the source tree (`make clean` removes it).
if [[ ${VPCLAB_SETUP_FORCE:-0} != 1 && ${VPCLAB_SANITIZE:-0} != 1 && -x $venv/bin/python && -f $stamp
      && $(cat "$stamp") == "$fingerprint" ]] && compgen -G 'dataplane/_native*.so' >/dev/null; then
    exit 0                          # built from exactly these sources already
fi
rm -f "$stamp"
if [[ ! -x $venv/bin/python ]]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel cffi
if [[ ${VPCLAB_SANITIZE:-0} == 1 ]]; then
    # A regular (non-editable) install: the sanitized engine lives in this venv only and
    # never replaces the one the source tree uses.
    echo "setup: building the engine with ASan/UBSan into $venv"
    "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps .
    "$venv/bin/python" -m pip install -q ".[test]"
    exit 0                          # no stamp: see above
else
    # test: pytest, hypothesis, scapy; bench: matplotlib for the end-to-end report's plots.
    echo "setup: building vpclab into $venv"
    "$venv/bin/python" -m pip install -q --no-build-isolation -e ".[test,bench]"
fi
echo "$fingerprint" > "$stamp"

#!/usr/bin/env bash
# Create the virtual environment and install cg3d with its pinned dependencies.
# System side (as root): apt lists, so the SH3D meshes can be fetched with `apt-get download`,
# Mesa's EGL for headless rendering, and headless Chromium for the search page's browser test.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libegl1 libegl-mesa0 libgl1-mesa-dri libglu1-mesa chromium chromium-driver >/dev/null
else
    ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so.0' \
        || echo "setup: no Mesa EGL found and not root; rendering needs Debian's libegl1 libegl-mesa0 libgl1-mesa-dri" >&2
    command -v chromedriver >/dev/null \
        || echo "setup: no chromedriver and not root; the search page's browser test needs Debian's chromium chromium-driver" >&2
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# torch first and alone: pip takes this exact CUDA build (it runs on the CPU) from local disk.
"$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$venv/bin/pip" install -q -e '.[test,bench,cluster,use]'

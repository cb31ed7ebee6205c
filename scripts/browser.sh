#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (playwright drives it; it never downloads one).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi

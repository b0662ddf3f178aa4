#!/usr/bin/env bash
# Installs Debian's chromium for the human-eval browser test (tests/human_eval/test_human_eval_browser.py).
# Playwright drives it through executable_path because Playwright's own browser download is not reachable.
# Idempotent: does nothing when a chromium binary is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium present: $(command -v chromium || command -v chromium-browser)"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq chromium >/dev/null
echo "chromium installed: $(command -v chromium)"

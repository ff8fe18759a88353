#!/bin/sh
# Makes Python's aiosmtpd importable for the email tests (a real SMTP server on loopback):
# installs it with pip into $HOME/.cache/cuewarden-py when it is missing, then prints the
# directory to put on PYTHONPATH. Fails (exit 1) rather than letting a test skip.
set -eu
target="${CUEWARDEN_PY_DIR:-${HOME:-/tmp}/.cache/cuewarden-py}"
python="${PYTHON:-python3}"
if ! PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$python" -c 'import aiosmtpd' 2>/dev/null; then
    mkdir -p "$target"
    "$python" -m pip install --quiet --disable-pip-version-check --target "$target" aiosmtpd >&2
    PYTHONPATH="$target" "$python" -c 'import aiosmtpd'
fi
printf '%s\n' "$target"

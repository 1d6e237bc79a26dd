#!/bin/sh
# Creates <repo>/.venv with moto[server] 5.x and boto3 for the AWS provider's tests
# (tests/aws.rs starts `moto_server` from it on 127.0.0.1). Idempotent: does nothing when the
# venv already imports both.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if "$venv/bin/python" -c 'import moto, boto3, flask, werkzeug' >/dev/null 2>&1 && [ -x "$venv/bin/moto_server" ]; then
    exit 0
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6' boto3
echo "setup_venv: moto_server installed in $venv"

#!/usr/bin/env bash
# The main job, end to end: build capsa, pack the python3 sample with its whole dependency
# closure, inspect and verify the bundle, then run Python from the bundle's files alone — in a
# new user and mount namespace whose root is the extracted bundle, so not one host library or
# program is visible. (`capsa run` will do this with the full sandbox; until then the demo uses
# `unshare -r -R`.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
capsa=$PWD/target/release/capsa
out=$(mktemp -d /tmp/capsa-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$capsa" pack samples/python3/capsa.toml -o "$out/python3.capsa"
"$capsa" inspect "$out/python3.capsa"
"$capsa" verify "$out/python3.capsa"
"$capsa" extract "$out/python3.capsa" "$out/root"
echo "running python3 from the bundle alone:"
unshare -r -R "$out/root" /usr/bin/python3 -c '
import os, ssl, sqlite3, ctypes
print("python", os.sys.version.split()[0], "with", ssl.OPENSSL_VERSION, "and sqlite", sqlite3.sqlite_version)
print("everything this process can see at /:", sorted(os.listdir("/")))'

#!/usr/bin/env bash
# The main job, end to end: build capsa, pack the python3 sample with its whole dependency
# closure, verify it, run it in the sandbox (it sees only its own files), install it into a
# throw-away store and run it by its id.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/prereqs.sh
capsa_prereqs
echo "== building capsa (release, one static file; the first build takes a few minutes)"
cargo build --release --locked
capsa=$PWD/target/x86_64-unknown-linux-gnu/release/capsa   # static: see .cargo/config.toml
out=$(mktemp -d /tmp/capsa-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT
# A private store and cache for the demo, so it leaves nothing behind.
export XDG_DATA_HOME=$out/data XDG_CACHE_HOME=$out/cache XDG_CONFIG_HOME=$out/config

"$capsa" pack samples/python3/capsa.toml -o "$out/python3.capsa"
"$capsa" verify "$out/python3.capsa"
echo "== running python3 in the sandbox:"
"$capsa" run --report "$out/python3.capsa" -- -c '
import os, ssl, sqlite3, ctypes
print("python", os.sys.version.split()[0], "with", ssl.OPENSSL_VERSION, "and sqlite", sqlite3.sqlite_version)
print("what it sees at /:", sorted(os.listdir("/")))
print("processes it sees:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))'
echo "== installing it and running it by id:"
"$capsa" install --yes "$out/python3.capsa"
"$capsa" info org.python.Python3
"$capsa" run org.python.Python3 -- -c 'print("hello from the installed app")'

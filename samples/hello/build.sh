#!/bin/sh
# Builds the hello sample next to its recipe: build/capsa-hello.
set -eu
cd "$(dirname "$0")"
mkdir -p build
${CC:-cc} -O2 -o build/capsa-hello hello.c -lm

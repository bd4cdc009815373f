# Sourced by samples/demo.sh and .ci/run: checks what building and running Capsa needs and, for
# whatever is missing, says exactly what to install. As root on a Debian system it installs the
# Debian packages itself (as .ci/run does); the Rust toolchain comes from rustup, never apt
# (Debian 12's rustc is 1.63; the workspace needs 1.89 or later).
# Usage: capsa_prereqs PACKAGE... (extra Debian packages the caller needs); exits 1 if missing.

capsa_prereqs() {
    export PATH="$HOME/.cargo/bin:/usr/local/cargo/bin:$PATH"
    local missing=() p
    # gcc and libc6-dev: the C parts of dependencies, and glibc's static libraries (capsa is a
    # static-pie binary); python3.11: the python3 sample.
    if command -v dpkg >/dev/null; then
        for p in gcc libc6-dev python3.11 "$@"; do
            dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
        done
    else
        # Not Debian: the same things by their commands, named as Debian calls them.
        command -v gcc >/dev/null || missing+=("gcc (a C compiler) and glibc's static libraries")
        command -v python3.11 >/dev/null || missing+=("python3.11")
    fi
    if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "capsa: installing ${missing[*]} (apt-get)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        missing=()
    fi
    local ok=1
    if [ ${#missing[@]} -gt 0 ]; then
        echo "capsa: missing Debian packages: ${missing[*]}" >&2
        if command -v dpkg >/dev/null; then
            echo "capsa:   install them: sudo apt-get install ${missing[*]}" >&2
        else
            echo "capsa:   install them with your distribution's package manager" >&2
        fi
        ok=0
    fi
    local v
    v=$(rustc --version 2>/dev/null | awk '{print $2}' || true)
    if ! command -v cargo >/dev/null || [ -z "$v" ]; then
        echo "capsa: missing the Rust toolchain (cargo and rustc 1.89 or later)" >&2
        echo "capsa:   install it with rustup: curl --proto '=https' -sSf https://sh.rustup.rs | sh" >&2
        echo "capsa:   (Debian's own rustc is too old), then open a new shell or: . ~/.cargo/env" >&2
        ok=0
    elif [ "$(printf '%s\n1.89.0\n' "$v" | sort -V | head -1)" != 1.89.0 ]; then
        echo "capsa: rustc $v is too old: the workspace needs 1.89 or later" >&2
        echo "capsa:   update it: rustup update stable" >&2
        ok=0
    fi
    [ $ok = 1 ] || exit 1
}

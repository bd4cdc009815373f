#!/usr/bin/env bash
# Store commands against the number of installed apps (see bench/README.md, "store.sh"):
# `capsa install` of one more app (uninstalled again after each run), and
# `capsa list`, `capsa info APP-ID` and `capsa run APP-ID` (`true`) with K apps installed, for K
# in BENCH_APPS (distinct ids, each /usr/bin/true and its libc closure; in the largest K one of
# them is instead an app with BENCH_BIG_FILES extra files), plus a store holding the python3
# sample and that big app. All stores interleaved in one run.
# Usage: bash bench/store.sh     BENCH_RUNS=3 for a smoke run (default 30 rounds)
source "$(dirname "$0")/lib.sh"
bench_init store
RUNS=$(runs_or 30)
APPS=${BENCH_APPS:-1 10 100}
BIG=${BENCH_BIG_FILES:-25000}
for k in $APPS; do [[ $k =~ ^[1-9][0-9]*$ ]] || die "BENCH_APPS: '$k' is not a positive number"; done
[[ $BIG =~ ^[0-9]+$ ]] || die "BENCH_BIG_FILES: '$BIG' is not a number"
MAXK=$(printf '%s\n' $APPS | sort -n | tail -1)
bench_capsa

user_dir "$WORK/apps"
log "packing $MAXK small apps, the $BIG-file app and the python3 sample"
for ((i = 1; i <= MAXK; i++)); do
    id=$(printf 'org.capsa.bench.App%03d' "$i")
    true_recipe "$WORK/apps/$id.toml" "$id"
    quiet as_user "$CAPSA_BIN" pack "$WORK/apps/$id.toml" -o "$WORK/apps/$id.capsa"
done
gen_files "$WORK/src/big" "$BIG"
chmod -R a+rX "$WORK/src"
BIG_ID=org.capsa.bench.Big
true_recipe "$WORK/apps/big.toml" "$BIG_ID" "$WORK/src/big"
quiet as_user "$CAPSA_BIN" pack "$WORK/apps/big.toml" -o "$WORK/apps/big.capsa"
quiet as_user "$CAPSA_BIN" pack "$ROOT/samples/python3/capsa.toml" -o "$WORK/apps/python3.capsa"
true_recipe "$WORK/apps/new.toml" org.capsa.bench.New
quiet as_user "$CAPSA_BIN" pack "$WORK/apps/new.toml" -o "$WORK/apps/new.capsa"

: >"$WORK/stores.tsv" # store dir, label, apps, first id, big id or -
install_into() { # DATA BUNDLE...
    local d=$1 b
    shift
    user_dir "$d"
    for b in "$@"; do quiet as_user XDG_DATA_HOME="$d" "$CAPSA_BIN" install --yes "$b"; done
}
for k in $APPS; do
    log "store with $k installed apps"
    bundles=()
    for ((i = 1; i <= k; i++)); do bundles+=("$WORK/apps/$(printf 'org.capsa.bench.App%03d' "$i").capsa"); done
    big=-
    if ((k == MAXK && k > 1)); then
        bundles[k - 1]=$WORK/apps/big.capsa
        big=$BIG_ID
    fi
    install_into "$WORK/data-$k" "${bundles[@]}"
    quiet as_user XDG_DATA_HOME="$WORK/data-$k" "$CAPSA_BIN" run org.capsa.bench.App001
    label="$k"
    [ "$big" = - ] || label="$k (one with $BIG files)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$WORK/data-$k" "$label" "$k" org.capsa.bench.App001 "$big" >>"$WORK/stores.tsv"
done
log "store with python3 and the $BIG-file app"
install_into "$WORK/data-py" "$WORK/apps/python3.capsa" "$WORK/apps/big.capsa"
printf '%s\t%s\t%s\t%s\t%s\n' "$WORK/data-py" "python3 + $BIG-file app" 2 org.python.Python3 "$BIG_ID" >>"$WORK/stores.tsv"

export CAPSA_BIN RUNS BIG
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, ms, ms_spread, ratio, user_env, as_user_sh

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
stores = [l.rstrip("\n").split("\t") for l in open(f"{W}/stores.tsv")]
rep = Report("store", "Store commands against the number of installed apps", int(os.environ["RUNS"]))

cmds, rows = [], []
for data, label, k, first, big in stores:
    env = user_env(W, {"XDG_DATA_HOME": data})
    row = {"label": label, "k": k, "big": big}
    row["list"] = Cmd(f"capsa list [{label}]", [capsa, "list"], env=env)
    row["info"] = Cmd(f"capsa info {first} [{label}]", [capsa, "info", first], env=env)
    row["run"] = (Cmd(f"capsa run {first} [{label}]", [capsa, "run", first], env=env)
                  if first != "org.python.Python3" else None)
    row["infobig"] = Cmd(f"capsa info {big} [{label}]", [capsa, "info", big], env=env) if big != "-" else None
    row["install"] = Cmd(f"capsa install one more [{label}]", [capsa, "install", "--yes", f"{W}/apps/new.capsa"],
                         env=env, prepare="sync",
                         after=as_user_sh([capsa, "uninstall", "--delete-data", "org.capsa.bench.New"], env))
    cmds += [c for c in (row["list"], row["info"], row["run"], row["infobig"], row["install"]) if c]
    rows.append(row)
rounds(cmds, int(os.environ["RUNS"]), warmup=2, label="store")

cell = lambda c: (ms(med(c.wall)), ms_spread(c.wall)) if c else ("—", "—")
body = []
for r in rows:
    body.append([r["label"], *cell(r["list"]), *cell(r["info"]), *cell(r["run"]), *cell(r["infobig"]),
                 *cell(r["install"])])
rep.table("1. `capsa list`, `info`, `run` (`true`), `install` against the installed apps (warm caches)",
          ["installed apps", "list ms", "min–max", "info (small app) ms", "min–max", "run (small app) ms", "min–max",
           "info (big app) ms", "min–max", "install one more ms", "min–max"], body)
rep.record(cmds)
rep.note("install one more: `capsa install --yes` of another true app (`sync` before, untimed), "
         "then `capsa uninstall --delete-data` of it after each run (untimed)")
rep.note("the small apps are /usr/bin/true and its libc closure (28 entries) with distinct ids, so they share "
         "their libc layer; `info` of the python3 store is of org.python.Python3")
target_store = [r for r in rows if r["big"] != "-" and r["run"]]  # the largest K (the python3 store has no run)
for r in target_store[-1:]:
    for what in ("list", "info", "run", "infobig"):  # (install has no target)
        if r[what]:
            rep.target(f"{r[what].name.split(' [')[0]} with {r['label']} installed", med(r[what].wall) * 1000, 15.0,
                       unit="ms")
rep.write()
PY

#!/usr/bin/env bash
# eStargz against gzip, and teu convert against ctr-remote, in one run.
#
#   bench/estargz.sh           full run (~5 minutes on 2 cores) on bench/corpus.py's corpus
#   bench/estargz.sh --smoke   a few MB, one run each: checks the harness
#
# Needs: hyperfine, python3, containerd and ctr-remote (Debian's stargz-snapshotter),
# all installed by scripts/test. Everything lands in $BENCH_DIR (default
# /tmp/teu-bench-estargz); the table is printed and kept in $BENCH_DIR/table.md.
#
# Builds (teu, scratch base, one layer): the app (~50 MB, 2,000 files) and the base
# (~400 MB, 7,000 files) as gzip and as estargz, level 6 both: cold (empty TEU_HOME),
# and the app again after one file changed; blob sizes from teu's --json.
# Conversion: the base as a gzip image (built by teu) converted to eStargz by
# `teu convert` (empty TEU_HOME each run, so nothing is cached) and by
# `ctr-remote images convert --oci --estargz` in a private containerd that already holds
# the source image (its content store is its input and output); sizes of the converted
# layer from each tool's output.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
smoke=0; [ "${1:-}" = --smoke ] && smoke=1
for c in hyperfine python3 containerd ctr-remote; do
  command -v "$c" >/dev/null || { echo "bench: $c is missing (scripts/test installs it)" >&2; exit 1; }
done
cargo build --release -q
teu=$root/target/release/teu
if [ $smoke = 1 ]; then
  work=${BENCH_DIR:-/tmp/teu-bench-estargz}-smoke; runs=1
else
  work=${BENCH_DIR:-/tmp/teu-bench-estargz}; runs=${BENCH_RUNS:-5}
fi
mkdir -p "$work" && cd "$work"
python3 "$root/bench/corpus.py" corpus $([ $smoke = 1 ] && echo --smoke)
echo 0 > corpus/app/CHANGED
results=$work/results; rm -rf "$results"; mkdir -p "$results"
hf() { # name, runs, hyperfine args..., command
  local name=$1 n=$2; shift 2
  hyperfine --style basic --runs "$n" --export-json "$results/$name.json" "$@" >/dev/null 2>"$results/$name.log" ||
    { cat "$results/$name.log" >&2; exit 1; }
  printf '  %-26s done\n' "$name" >&2
}

for tree in app base; do
  src=corpus/$tree; [ $tree = base ] && src=corpus/base/usr
  printf '[[layer]]\nname = "%s"\ncopy = [{ src = "%s", dest = "/%s/" }]\n' "$tree" "$src" "$tree" > $tree.toml
  n=$runs; [ $tree = base ] && n=$(( runs < 3 ? runs : 3 ))
  for algo in gzip estargz; do
    home=$work/home-$tree-$algo
    t="env TEU_HOME=$home $teu build $tree.toml -q --compression $algo -o oci:out-$tree-$algo:latest"
    hf "cold-$tree-$algo" $n --prepare "rm -rf $home out-$tree-$algo" "$t"
    env TEU_HOME=$home $teu build $tree.toml -q --json --compression $algo -o oci:out-$tree-$algo:latest \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["size"])' > "$results/size-$tree-$algo"
    if [ $tree = app ]; then
      hf "onefile-$tree-$algo" $runs --warmup 1 --prepare "date +%s%N > corpus/app/CHANGED" "$t"
    fi
  done
done

# Conversion of the base (gzip, as teu built it) to eStargz.
conv_src=out-base-gzip
hf "convert-teu" $(( runs < 3 ? runs : 3 )) --prepare "rm -rf $work/home-conv conv-out" \
  "env TEU_HOME=$work/home-conv $teu convert oci:$conv_src:latest oci:conv-out:latest --compression estargz -q"
env TEU_HOME=$work/home-conv $teu convert oci:$conv_src:latest oci:conv-out:latest --compression estargz --json -q \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["size"])' > "$results/size-convert-teu"

ctrd=$work/containerd; rm -rf "$ctrd"; mkdir -p "$ctrd"
cat > "$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ctrd/sock"
[ttrpc]
  address = "$ctrd/sock.ttrpc"
[debug]
  address = "$ctrd/debug.sock"
[metrics]
  address = ""
TOML
containerd --config "$ctrd/config.toml" >"$ctrd/log" 2>&1 &
ctrd_pid=$!
trap 'kill $ctrd_pid 2>/dev/null; wait $ctrd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$ctrd/sock" ] && ctr --address "$ctrd/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
cr="ctr-remote --address $ctrd/sock -n bench"
TEU_HOME=$work/home-base-gzip $teu load oci:$conv_src:latest containerd:bench/docker.io/bench/base:gz \
  --containerd-address "$ctrd/sock" -q >/dev/null
hf "convert-ctr-remote" $(( runs < 3 ? runs : 3 )) --prepare "$cr images rm docker.io/bench/base:esgz >/dev/null 2>&1 || true" \
  "$cr images convert --oci --estargz docker.io/bench/base:gz docker.io/bench/base:esgz"
rm -f ctr-remote-esgz.tar
$cr images export ctr-remote-esgz.tar docker.io/bench/base:esgz
python3 - ctr-remote-esgz.tar > "$results/size-convert-ctr-remote" <<'PY'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
blob = lambda d: json.load(t.extractfile("blobs/sha256/" + d.split(":")[1]))
top = json.load(t.extractfile("index.json"))["manifests"][0]
m = blob(top["digest"])
if "manifests" in m:
    m = blob(m["manifests"][0]["digest"])
print(sum(l["size"] for l in m["layers"]))
PY

python3 - "$results" corpus <<'PY' | tee "$work/table.md"
import json, os, sys
results, corpus = sys.argv[1], sys.argv[2]
med = lambda n: json.load(open(os.path.join(results, n + ".json")))["results"][0]["median"]
size = lambda n: int(open(os.path.join(results, "size-" + n)).read())
def files_mb(name):
    n = t = 0
    for line in open(os.path.join(corpus, name + ".list")):
        n += 1; t += int(line.split("\t")[1])
    return n, t / 1e6
print("| corpus | measure | gzip | estargz | estargz / gzip | goal |")
print("| --- | --- | --- | --- | --- | --- |")
for tree in ["app", "base"]:
    n, mb = files_mb(tree)
    label = f"{tree} ({n} files, {mb:.0f} MB)"
    g, e = med(f"cold-{tree}-gzip"), med(f"cold-{tree}-estargz")
    print(f"| {label} | cold build | {g*1000:.0f} ms | {e*1000:.0f} ms | {e/g:.2f}x | ≤ 1.30x |")
    gs, es = size(f"{tree}-gzip"), size(f"{tree}-estargz")
    print(f"| {label} | blob size | {gs/1e6:.2f} MB | {es/1e6:.2f} MB | {es/gs:.3f}x | ≤ 1.05x |")
    if tree == "app":
        g, e = med("onefile-app-gzip"), med("onefile-app-estargz")
        print(f"| {label} | one-file rebuild | {g*1000:.0f} ms | {e*1000:.0f} ms | {e/g:.2f}x | |")
print()
t, c = med("convert-teu"), med("convert-ctr-remote")
ts, cs = size("convert-teu"), size("convert-ctr-remote")
print("| base gzip image to eStargz | teu convert | ctr-remote images convert --oci --estargz | teu / ctr-remote | goal |")
print("| --- | --- | --- | --- | --- |")
print(f"| wall time | {t:.2f} s | {c:.2f} s | {t/c:.2f}x | < 1x |")
print(f"| converted layer size | {ts/1e6:.2f} MB | {cs/1e6:.2f} MB | {ts/cs:.3f}x | |")
PY

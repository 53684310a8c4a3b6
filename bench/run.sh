#!/usr/bin/env bash
# teu build benchmarks against umoci, buildah and the plain compressor floors.
#
#   bench/run.sh            full run (~10 minutes on 2 cores): corpus of ~50 MB app + ~400 MB base
#   bench/run.sh --smoke    a few MB, one run each, no buildah: checks the harness in seconds
#
# Needs: hyperfine, umoci, buildah, skopeo, zstd, pigz, python3, GNU tar (scripts/test
# installs them on Debian). Everything lands in $BENCH_DIR (default /tmp/teu-bench, never
# in the repository); the table is printed on stdout and kept in $BENCH_DIR/table.md
# (copy it into BENCHMARKS.md with the machine).
#
# Scenarios, each for gzip and zstd:
#   cold     teu with an empty store (TEU_HOME removed before each run)
#   noop     teu again with nothing changed
#   onefile  teu after one file of the app changed
#   base-onefile  the same one-file rebuild of a base-sized layer (the ~400 MB corpus/base)
#   ten      ten builds in a row, a different file changed before each (one command)
# and for the bundled tarball example (examples/hello, vendor.tar.gz) and the app as a
# .tar.gz (normalized and verbatim): cold, then the second build (a cache hit).
# umoci insert and buildah from/copy/commit have no layer cache: they do the same work
# in every scenario, so each is measured once (gzip; Debian's umoci cannot write zstd).
# Every tool writes into a copy of the same base layout, so nobody copies the base.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
smoke=0; [ "${1:-}" = --smoke ] && smoke=1

for c in hyperfine umoci buildah zstd pigz python3 tar; do
  command -v "$c" >/dev/null || { echo "bench: $c is missing (scripts/test installs it)" >&2; exit 1; }
done
cargo build --release -q
cargo build --release -q -p teu-layer --example one_stream
teu=$root/target/release/teu

if [ $smoke = 1 ]; then
  work=${BENCH_DIR:-/tmp/teu-bench}-smoke; runs=1; fast_runs=2; warm=0
else
  work=${BENCH_DIR:-/tmp/teu-bench}; runs=${BENCH_RUNS:-5}; fast_runs=${BENCH_FAST_RUNS:-20}; warm=1
fi
mkdir -p "$work" && cd "$work"
python3 "$root/bench/corpus.py" corpus $([ $smoke = 1 ] && echo --smoke)
echo 0 > corpus/app/CHANGED   # the file the one-file scenario rewrites
results=$work/results; rm -rf "$results"; mkdir -p "$results"

# The base: one gzip layer in an OCI layout, built once (teu's store for it is separate).
if [ ! -f base-layout/index.json ]; then
  TEU_HOME=$work/home-base "$teu" build -q --copy corpus/base/usr:/usr --compression gzip -o oci:base-layout:base >/dev/null
fi
cat > teu.toml <<TOML
[image]
base = "oci:base-layout:base"

[[layer]]
name = "app"
copy = [{ src = "corpus/app", dest = "/app/" }]
TOML

hf() { # name, runs, extra hyperfine args..., command
  local name=$1 n=$2; shift 2
  hyperfine --style basic --runs "$n" --export-json "$results/$name.json" "$@" >/dev/null 2>"$results/$name.log" ||
    { cat "$results/$name.log" >&2; exit 1; }
  printf '  %-22s done\n' "$name" >&2
}
fresh_out='rm -rf out && cp -a base-layout out'

for algo in gzip zstd; do
  t="env TEU_HOME=$work/home-$algo $teu build -q --compression $algo -o oci:out:latest"
  hf "teu-cold-$algo" $runs --prepare "rm -rf $work/home-$algo && $fresh_out" "$t"
  hf "teu-noop-$algo" $fast_runs --warmup 2 -N "$t"
  hf "teu-onefile-$algo" $runs --warmup 1 --prepare "date +%s%N > corpus/app/CHANGED" "$t"
done
# A base-sized layer (corpus/base, ~400 MB, 7,000 files), one file changed: teu against
# umoci inserting the same tree. Fewer runs: umoci gzips 400 MB each time.
echo 0 > corpus/base/usr/CHANGED
big_runs=$(( runs < 3 ? runs : 3 ))
cat > base.toml <<TOML
[[layer]]
name = "base"
copy = [{ src = "corpus/base/usr", dest = "/usr/" }]
TOML
for algo in gzip zstd; do
  t="env TEU_HOME=$work/home-base-$algo $teu build -q base.toml --compression $algo -o oci:bout-$algo"
  $t >/dev/null   # cold, untimed: the scenario is the rebuild
  sleep 1.1       # sources written in the build's first second are not recorded (racy)
  $t >/dev/null
  hf "teu-base-onefile-$algo" $big_runs --warmup 1 --prepare "date +%s%N > corpus/base/usr/CHANGED" "$t"
done
hf umoci-insert-base $big_runs --prepare "$fresh_out" "umoci insert --image out:base corpus/base/usr /usr2"

# Ten builds in a row, a different file changed before each (the edit loop).
for i in 0 1 2 3 4 5 6 7 8 9; do echo 0 > corpus/app/LOOP$i; done
for algo in gzip zstd; do
  t="env TEU_HOME=$work/home-$algo $teu build -q --compression $algo -o oci:out:latest"
  hf "teu-ten-$algo" $big_runs "for i in 0 1 2 3 4 5 6 7 8 9; do date +%s%N > corpus/app/LOOP\$i; $t >/dev/null; done"
done

# Tarball layers: the bundled example, and the app as a .tar.gz imported normalized and
# verbatim. Cold (empty store), then a second build with nothing changed (a cache hit).
rm -rf hello && cp -a "$root/examples/hello" hello
tar -C corpus/app -czf app.tar.gz .
touch -d '2020-01-01' app.tar.gz
sleep 1.1   # its ctime is now: let it settle (racy sources are not recorded)
mkdir -p tgz-norm tgz-verb
printf '[[layer]]\nname = "vendor"\ntars = [{ src = "../app.tar.gz", dest = "/app/" }]\n' > tgz-norm/teu.toml
printf '[[layer]]\nname = "vendor"\ntars = [{ src = "../app.tar.gz", normalize = false }]\n' > tgz-verb/teu.toml
for spec in hello tgz-norm tgz-verb; do
  t="env TEU_HOME=$work/home-$spec $teu build -q $spec -o oci:tout-$spec"
  hf "teu-$spec-cold" $runs --prepare "rm -rf $work/home-$spec" "$t"
  hf "teu-$spec-hit" $fast_runs --warmup 2 "$t"
done

hf floor-zstd $runs "tar -C corpus/app -cf - . | zstd -3 -T0 -q -c > /dev/null"
hf floor-pigz $runs "tar -C corpus/app -cf - . | pigz -6 -c > /dev/null"
hf umoci-insert $runs --prepare "$fresh_out" "umoci insert --image out:base corpus/app /app"
if [ $smoke = 0 ]; then
  # overlay (as root) rather than vfs, which copies the whole base on every `from`.
  driver=overlay; [ "$(id -u)" = 0 ] || driver=vfs
  bah="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver $driver"
  # Import the base once, untimed: buildah then works from its own storage, warm.
  $bah from --name warm oci:base-layout:base >/dev/null && $bah rm warm >/dev/null
  hf buildah "$(( runs < 3 ? runs : 3 ))" --prepare "rm -rf bout" \
    "c=\$($bah from oci:base-layout:base) && $bah copy -q \$c corpus/app /app && $bah commit -q --disable-compression=false \$c oci:bout:latest >/dev/null && $bah rm \$c >/dev/null"
fi

# Sizes: the exact tar teu writes (compression none), compressed as one stream.
TEU_HOME=$work/home-none "$teu" build -q --compression none --json -o oci:out-none >"$results/none.json"
tar_blob=out-none/blobs/sha256/$(python3 -c "import json;print(json.load(open('$results/none.json'))['layers'][0]['digest'][7:])")
{
  echo "tar $(stat -c %s "$tar_blob")"
  echo "gzip-6 $(gzip -6 -c "$tar_blob" | wc -c)"
  echo "pigz-6 $(pigz -6 -c "$tar_blob" | wc -c)"
  echo "zstd-3 $(zstd -3 -q -c "$tar_blob" | wc -c)"
  "$root/target/release/examples/one_stream" "$tar_blob"   # teu's encoders, one segment
  for algo in gzip zstd; do
    TEU_HOME=$work/home-$algo "$teu" build -q --compression $algo --json -o oci:out >"$results/$algo.json"
    echo "teu-$algo $(python3 -c "import json;print(json.load(open('$results/$algo.json'))['layers'][0]['size'])")"
  done
} > "$results/sizes.txt"

python3 "$root/bench/report.py" "$results" "$work/corpus" | tee "$work/table.md"

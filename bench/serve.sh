#!/usr/bin/env bash
# Registry benchmark: `teu serve` (filesystem storage) against the CNCF distribution
# registry (Debian docker-registry 2.8.2, filesystem storage) on the same machine and the
# same inputs, in one run. Prints a table and the teu/distribution ratios.
#
#   bench/serve.sh                      # 500 MB image, 1 GiB blob
#   IMAGE_MIB=100 BLOB_MIB=256 bench/serve.sh   # smaller, for a quick look
#
# Measured for each registry, started fresh on an empty directory:
#   push       skopeo copy oci:LAYOUT docker://REG/big:1 (5 gzip'd layers of random bytes)
#   cold pull  skopeo copy docker://REG/big:1 oci:OUT into an empty OUT (after a sync)
#   warm pull  the same again into the same OUT (skopeo finds the blobs there)
#   GET x1     one curl of a 1 GiB blob (already in the server's page cache), MB/s,
#              best of 5 rounds that alternate between the registries
#   GET x16    16 curls of that blob at once, total MB/s, best of 3 alternating rounds
#   peak RSS   the server's VmHWM at the end (its peak over the whole run)
# Everything runs on loopback; the data lives in a temporary directory under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE_MIB=${IMAGE_MIB:-500}
BLOB_MIB=${BLOB_MIB:-1024}
TEU=${TEU:-target/release/teu}
[ -x "$TEU" ] || cargo build --release -q -p teu
for t in docker-registry skopeo curl python3; do
  command -v "$t" >/dev/null || { echo "bench/serve.sh: $t is missing (scripts/test installs it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/teu-bench-serve.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
export HOME=$work/home; mkdir -p "$HOME"

# The inputs: an OCI layout with five uncompressible layers, and one big blob.
python3 - "$work/layout" "$IMAGE_MIB" "$work/blob" "$BLOB_MIB" <<'PY'
import hashlib, json, os, random, sys, zlib
layout, mib, blob, blob_mib = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
os.makedirs(f"{layout}/blobs/sha256")
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{layout}/blobs/sha256/{d}", "wb").write(b)
    return d
r = random.Random(7)
layers = []
for i in range(5):
    # Gzip'd random bytes: skopeo sees compressed layers and sends them as they are
    # (uncompressed ones it would gzip itself, and the push would time its compressor).
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    b = z.compress(r.randbytes(mib * 1048576 // 5)) + z.flush()
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + put(b), "size": len(b)})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + put(cfg), "size": len(cfg)},
    "layers": layers}).encode()
md = put(m)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "1"}}]},
    open(f"{layout}/index.json", "w"))
open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
with open(blob, "wb") as f:
    for _ in range(blob_mib):
        f.write(r.randbytes(1048576))
PY
blob_digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"
# Flush the inputs' dirty pages now, so their write-back does not land in whichever
# registry's timings happen to run first (it did: the first cold pull paid for it).
sync

wait_up() { for _ in $(seq 200); do curl -fs -o /dev/null "http://$1/v2/" && return 0; sleep 0.05; done; echo "registry $1 did not start" >&2; exit 1; }

# Both registries run side by side (an idle one costs nothing). Push and pulls run for
# one registry, then the other; the GET measurements alternate between the two, round
# after round, and keep each one's best, so a burst of load from elsewhere on the
# machine does not land on one registry only.
declare -A result addr_of pid_of
push_pull() {
  local name=$1 addr=${addr_of[$1]} t0 t1
  sync
  t0=$(now); skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1" "docker://$addr/big:1"; t1=$(now)
  result[$name,push]=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  rm -rf "$work/out"
  sync
  t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$addr/big:1" "oci:$work/out:1"; t1=$(now)
  result[$name,cold]=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$addr/big:1" "oci:$work/out:1"; t1=$(now)
  result[$name,warm]=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  rm -rf "$work/out"
  # The big blob, monolithic upload (POST, then PUT streaming the file).
  local loc sep
  loc=$(curl -fsS -X POST -D - -o /dev/null "http://$addr/v2/blob/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -T "$work/blob" "$loc${sep}digest=$blob_digest" -o /dev/null
  curl -fsS -o /dev/null "http://$addr/v2/blob/blobs/$blob_digest"   # into the page cache
  result[$name,get1]=0
  result[$name,get16]=0
}
get1() {
  local name=$1 s
  s=$(curl -fsS -o /dev/null -w '%{speed_download}' "http://${addr_of[$name]}/v2/blob/blobs/$blob_digest")
  result[$name,get1]=$(python3 -c "print(f'{max(${result[$name,get1]}, $s/1e6):.0f}')")
}
get16() {
  local name=$1 t0 t1 cpids=()
  t0=$(now)
  for _ in $(seq 16); do curl -fsS -o /dev/null "http://${addr_of[$name]}/v2/blob/blobs/$blob_digest" & cpids+=($!); done
  wait "${cpids[@]}"
  t1=$(now)
  result[$name,get16]=$(python3 -c "print(f'{max(${result[$name,get16]}, 16*$BLOB_MIB*1048576/($t1-$t0)/1e6):.0f}')")
}

start_teu() {
  local port; port=$(free_port); addr=127.0.0.1:$port
  TEU_SERVE_LOG=warn "$TEU" serve --listen "$addr" --storage "$work/teu-data" 2>"$work/teu.log" & pid=$!; pids+=($pid)
}
start_distribution() {
  local port; port=$(free_port); addr=127.0.0.1:$port
  cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/dist-data
http:
  addr: $addr
YML
  docker-registry serve "$work/registry.yml" 2>"$work/dist.log" & pid=$!; pids+=($pid)
}

# ORDER="distribution teu" runs distribution first, to check that order does not matter.
order=${ORDER:-teu distribution}
for r in $order; do "start_$r"; addr_of[$r]=$addr; pid_of[$r]=$pid; wait_up "$addr"; done
for r in $order; do push_pull "$r"; done
for _ in 1 2 3 4 5; do for r in $order; do get1 "$r"; done; done
for _ in 1 2 3; do for r in $order; do get16 "$r"; done; done
for r in $order; do
  result[$r,rss]=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/${pid_of[$r]}/status")
done

python3 - "$IMAGE_MIB" "$BLOB_MIB" \
  "${result[teu,push]}" "${result[distribution,push]}" \
  "${result[teu,cold]}" "${result[distribution,cold]}" \
  "${result[teu,warm]}" "${result[distribution,warm]}" \
  "${result[teu,get1]}" "${result[distribution,get1]}" \
  "${result[teu,get16]}" "${result[distribution,get16]}" \
  "${result[teu,rss]}" "${result[distribution,rss]}" <<'PY'
import sys
a = sys.argv[1:]
img, blob = a[0], a[1]
rows = [
    (f"push {img} MB image, skopeo (s)", float(a[2]), float(a[3]), "lower"),
    ("cold pull, skopeo (s)", float(a[4]), float(a[5]), "lower"),
    ("warm pull, skopeo (s)", float(a[6]), float(a[7]), "lower"),
    (f"blob GET {blob} MiB, 1 client (MB/s, best of 5)", float(a[8]), float(a[9]), "higher"),
    (f"blob GET {blob} MiB, 16 clients (MB/s total, best of 3)", float(a[10]), float(a[11]), "higher"),
    ("peak server RSS (MiB)", float(a[12]), float(a[13]), "lower"),
]
print("| measure | teu serve | distribution 2.8.2 | teu / distribution |")
print("| --- | --- | --- | --- |")
for name, t, d, _ in rows:
    print(f"| {name} | {t:g} | {d:g} | {t/d:.2f}x |")
print()
g1, g16, rss = float(a[8]), float(a[10]), float(a[12])
ratio = min(g1 / float(a[9]), g16 / float(a[11]))
print(f"goal: blob throughput >= 1.5x distribution (1 and 16 clients): {'met' if ratio >= 1.5 else 'NOT met'} ({ratio:.2f}x at worst)")
print(f"goal: >= 1 GB/s for a cached {blob} MiB blob to one client: {'met' if g1 >= 1000 else 'NOT met'} ({g1:.0f} MB/s)")
print(f"goal: peak RSS < 100 MiB at 16 clients: {'met' if rss < 100 else 'NOT met'} ({rss:.1f} MiB)")
PY

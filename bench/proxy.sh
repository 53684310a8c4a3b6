#!/usr/bin/env bash
# Pull-through cache benchmark: `teu serve` with an [[upstream]] against the CNCF
# distribution registry as a proxy (Debian docker-registry 2.8.2, `proxy: remoteurl:`), in
# front of the same throttled upstream, in one run. Prints a table and the goals.
#
#   bench/proxy.sh                              # 300 MB image, 60 MB/s upstream link, 8 clients
#   IMAGE_MIB=100 RATE_MBPS=40 bench/proxy.sh   # smaller, for a quick look
#
# The upstream is a plain docker-registry holding one image (five gzip'd layers of random
# bytes), reached through bench/throttle_proxy.py: one link of RATE_MBPS shared by every
# connection, counting the bytes it sends (headers included) and the requests it sees.
# For each cache, started fresh on an empty directory:
#   cold x1   one skopeo copy docker://CACHE/…/big:1 oci:OUT
#   warm      the same again into an empty OUT (the cache holds the image; within its TTL)
#   cold xN   the cache restarted on an empty directory, then N skopeo copies at once
#   warm xN   N copies at once again from that cache (a control: the clients' own cost
#             with the cache in the path but no link to wait for)
# and, as baselines, skopeo straight from the throttled upstream (1 and N clients; N
# clients there each fetch their own copy over the one link), and skopeo straight from
# the upstream registry with no throttle and no cache (1 and N clients: what the clients
# alone cost on this machine, the floor for any cache's wall).
# Wall times are the clients' (the last to finish); upstream bytes and requests are counted
# until the upstream link has been idle for 2 s, so a background fill is included.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE_MIB=${IMAGE_MIB:-300}
RATE_MBPS=${RATE_MBPS:-60}
CLIENTS=${CLIENTS:-8}
# Built every time unless TEU names a binary: a stale target/release/teu would measure old code.
if [ -z "${TEU:-}" ]; then cargo build --release -q -p teu; TEU=target/release/teu; fi
for t in docker-registry skopeo curl python3; do
  command -v "$t" >/dev/null || { echo "bench/proxy.sh: $t is missing (scripts/test installs it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/teu-bench-proxy.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
export HOME=$work/home; mkdir -p "$HOME"

image_bytes=$(python3 - "$work/layout" "$IMAGE_MIB" <<'PY'
import hashlib, json, os, random, sys, zlib
layout, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{layout}/blobs/sha256")
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{layout}/blobs/sha256/{d}", "wb").write(b)
    return d
r = random.Random(11)
layers = []
for i in range(5):
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
print(sum(l["size"] for l in layers) + len(cfg) + len(m))
PY
)
sync

wait_up() { for _ in $(seq 200); do curl -fs -o /dev/null "http://$1/v2/" && return 0; sleep 0.05; done; echo "registry $1 did not start" >&2; exit 1; }

registry_yml() { # DIR ADDR [REMOTE]
  cat <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1
http:
  addr: $2
YML
  [ -n "${3:-}" ] && printf 'proxy:\n  remoteurl: %s\n' "$3"
  return 0
}

# The upstream, filled directly (not through the throttle).
up=127.0.0.1:$(free_port)
registry_yml "$work/upstream" "$up" > "$work/upstream.yml"
docker-registry serve "$work/upstream.yml" 2>"$work/upstream.log" & pids+=($!)
wait_up "$up"
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1" "docker://$up/library/big:1"

declare -A link_of result
for r in teu distribution direct; do
  port=$(free_port); link_of[$r]=127.0.0.1:$port
  python3 bench/throttle_proxy.py "$port" "$up" "$RATE_MBPS" "$work/link-$r" & pids+=($!)
done
sleep 0.5

cache_pid=
start_cache() { # NAME DATA-DIR -> sets addr, ref
  local name=$1 data=$2 port; port=$(free_port); addr=127.0.0.1:$port
  if [ "$name" = teu ]; then
    cat > "$work/teu.toml" <<TOML
listen = "$addr"
storage = "$data"
[[upstream]]
name = "docker.io"
url = "http://${link_of[teu]}"
tag_ttl = "5m"
TOML
    TEU_SERVE_LOG=warn "$TEU" serve --config "$work/teu.toml" 2>>"$work/teu.log" & cache_pid=$!
    ref="docker://$addr/docker.io/library/big:1"
  else
    registry_yml "$data" "$addr" "http://${link_of[distribution]}" > "$work/dist.yml"
    docker-registry serve "$work/dist.yml" 2>>"$work/dist.log" & cache_pid=$!
    ref="docker://$addr/library/big:1"
  fi
  pids+=($cache_pid)
  wait_up "$addr"
}
stop_cache() { kill "$cache_pid"; wait "$cache_pid" 2>/dev/null || true; }

# A name with no link (the unthrottled upstream) counts nothing.
counters() { cat "$work/link-$1" 2>/dev/null || echo "0 0"; }
# Wait until the link has been idle for 2 s (at most 120 s).
settle() {
  local prev cur i
  prev=$(counters "$1")
  for i in $(seq 60); do sleep 2; cur=$(counters "$1"); [ "$cur" = "$prev" ] && return 0; prev=$cur; done
}
measure() { # NAME CASE CLIENTS
  local name=$1 case=$2 n=$3 b0 r0 b1 r1 t0 t1 cpids=() i
  read -r b0 r0 < <(counters "$name")
  rm -rf "$work/out"; mkdir -p "$work/out"; sync
  t0=$(now)
  for i in $(seq "$n"); do
    skopeo copy -q --src-tls-verify=false "$ref" "oci:$work/out/$i:1" & cpids+=($!)
  done
  wait "${cpids[@]}"
  t1=$(now)
  settle "$name"
  read -r b1 r1 < <(counters "$name")
  result[$name,$case,wall]=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  result[$name,$case,mb]=$(python3 -c "print(f'{($b1-$b0)/1e6:.1f}')")
  result[$name,$case,req]=$((r1 - r0))
  rm -rf "$work/out"
}

# The baseline: skopeo straight from the throttled upstream, no cache in between.
ref="docker://${link_of[direct]}/library/big:1"
measure direct cold1 1
measure direct coldn "$CLIENTS"
# The floor: no link, no cache.
ref="docker://$up/library/big:1"
measure raw cold1 1
measure raw coldn "$CLIENTS"
for r in teu distribution; do
  start_cache "$r" "$work/$r-1"
  measure "$r" cold1 1
  measure "$r" warm 1
  stop_cache
  start_cache "$r" "$work/$r-2"
  measure "$r" coldn "$CLIENTS"
  measure "$r" warmn "$CLIENTS"
  stop_cache
  cp "$work/link-$r.log" "$work/requests-$r.log" 2>/dev/null || true
done
echo "upstream requests, teu:" >&2; sort "$work/requests-teu.log" | uniq -c | sort -rn | head -20 >&2
echo "upstream requests, distribution:" >&2; sort "$work/requests-distribution.log" | uniq -c | sort -rn | head -20 >&2

args=("$image_bytes" "$RATE_MBPS" "$CLIENTS" "${result[direct,cold1,wall]}" "${result[direct,coldn,wall]}"
  "${result[raw,cold1,wall]}" "${result[raw,coldn,wall]}")
for c in cold1 coldn warm warmn; do for k in wall mb req; do for r in teu distribution; do
  args+=("${result[$r,$c,$k]}")
done; done; done
python3 - "${args[@]}" <<'PY'
import sys
a = sys.argv[1:]
size, rate, n = int(a[0]), float(a[1]), int(a[2])
direct1, directn = float(a[3]), float(a[4])
raw1, rawn = float(a[5]), float(a[6])
v = {}
i = 7
for c in ["cold1", "coldn", "warm", "warmn"]:
    for k in ["wall", "mb", "req"]:
        v[c, k] = (float(a[i]), float(a[i + 1]))
        i += 2
ideal = size / (rate * 1e6)
mb = size / 1e6
print(f"image {mb:.1f} MB; upstream link {rate:g} MB/s, so {ideal:.2f} s at best")
print(f"skopeo straight from the throttled upstream, no cache: {direct1:.2f} s for 1 client, "
      f"{directn:.2f} s for {n} at once (each client fetching its own copy over the link)")
print(f"skopeo straight from the upstream registry, no link, no cache (the clients' floor): "
      f"{raw1:.2f} s for 1 client, {rawn:.2f} s for {n} at once\n")
print("| measure | teu serve | distribution 2.8.2 |")
print("| --- | --- | --- |")
rows = [
    ("cold pull, 1 client: wall (s)", "cold1", "wall"),
    ("cold pull, 1 client: upstream MB", "cold1", "mb"),
    ("cold pull, 1 client: upstream requests", "cold1", "req"),
    (f"cold pull, {n} clients at once: wall of the last (s)", "coldn", "wall"),
    (f"cold pull, {n} clients at once: upstream MB", "coldn", "mb"),
    (f"cold pull, {n} clients at once: upstream requests", "coldn", "req"),
    ("warm pull, 1 client: wall (s)", "warm", "wall"),
    ("warm pull, 1 client: upstream requests", "warm", "req"),
    (f"warm pull, {n} clients at once: wall of the last (s)", "warmn", "wall"),
    (f"warm pull, {n} clients at once: upstream requests", "warmn", "req"),
]
for name, c, k in rows:
    t, d = v[c, k]
    print(f"| {name} | {t:g} | {d:g} |")
print()
# Headers are counted too: allow 1% over the image for them.
for c, label in [("cold1", "1 client"), ("coldn", f"{n} clients")]:
    t = v[c, "mb"][0]
    ok = t <= mb * 1.01
    print(f"goal: upstream bytes = image size, {label}: {'met' if ok else 'NOT met'} ({t:.1f} MB for {mb:.1f} MB)")
for c, label in [("cold1", "1 client"), ("coldn", f"{n} clients")]:
    t = v[c, "wall"][0]
    ok = t <= ideal * 1.05
    print(f"goal: cold wall within 5% of the link, {label}: {'met' if ok else 'NOT met'} ({t:.2f} s, {t / ideal:.2f}x of {ideal:.2f} s)")
# What the clients cost alone: a cold wall cannot beat the link or the clients' floor.
for c, floor, label in [("cold1", raw1, "1 client"), ("coldn", rawn, f"{n} clients")]:
    t = v[c, "wall"][0]
    bound = max(ideal, floor)
    print(f"control, {label}: the clients alone take {floor:.2f} s, so the best cold wall is {bound:.2f} s; "
          f"teu took {t:.2f} s ({t / bound:.2f}x of that)")
w = v["warm", "req"][0]
print(f"goal: warm pull with no upstream request inside the TTL: {'met' if w == 0 else 'NOT met'} ({w:g})")
PY

#!/usr/bin/env bash
# Load benchmarks: `teu load` against each engine's own load of the same image, one run,
# each engine started here with private state (as the tests do; never the machine's
# sockets). Prints wall time and bytes sent to the engine, and teu/engine ratios.
#
#   bench/load.sh                   # deps layer: /usr/lib/python3.11 (~54 MB), app layer tiny
#   DEPS=/usr/share/locale bench/load.sh
#
# Scenarios, for each engine:
#   first    the image loaded into an engine that has none of it
#   changed  one file of the app layer changed, loaded into an engine holding the first
# How each is run:
#   docker   teu load oci:v1 docker-daemon:bench:v1   vs  docker load -i v1.docker.tar
#   podman   teu load oci:v1 podman:bench:v1 (service) vs  podman load -i v1.docker.tar
#   ctr      teu load oci:v1 containerd:NS/bench:v1   vs  ctr images import --no-unpack v1.oci.tar
# Engine loads are fed teu's own archives (built beforehand, not timed). Bytes sent: the
# archive's size for the engine's loaders (they read all of it); teu's report
# (`engine.bytes_sent`) for teu. For "changed" with docker and podman, the engine's own
# load runs after `rmi` of the image teu just loaded (the first one stays), so both start
# from the same state. ctr imports without unpacking, as teu writes without unpacking.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=${DEPS:-/usr/lib/python3.11}
TEU=${TEU:-target/release/teu}
[ -x "$TEU" ] || cargo build --release -q -p teu
TEU=$(realpath "$TEU")
for t in dockerd docker podman containerd ctr cc python3; do
  command -v "$t" >/dev/null || { echo "bench/load.sh: $t is missing (scripts/test installs it)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/teu-bench-load.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$W" 2>/dev/null || true
}
trap cleanup EXIT
# teu is pointed at each engine explicitly; podman's own CLI must not see CONTAINER_HOST
# (it would go remote).
export TEU_HOME=$W/teu-home DOCKER_HOST=unix:///nonexistent
unset CONTAINER_HOST

# --- the image: deps (big, unchanged), app (a static program and one file that changes)
mkdir -p "$W/app"
cp -a "$DEPS" "$W/app/deps"
printf '#include <stdio.h>\nint main(void){puts("bench");return 0;}\n' > "$W/app/hello.c"
cc -static -O2 -o "$W/app/hello" "$W/app/hello.c"
cat > "$W/app/teu.toml" <<EOF
[image]
base = "scratch"
platform = "linux/amd64"
[config]
entrypoint = ["/hello"]
[[layer]]
name = "deps"
copy = [{ src = "deps/", dest = "/deps/" }]
[[layer]]
name = "app"
copy = [{ src = "hello", dest = "/hello", mode = "0755" }, { src = "msg.txt", dest = "/msg.txt" }]
EOF
build() { # VERSION
  echo "message $1" > "$W/app/msg.txt"
  (cd "$W/app" && "$TEU" build -q -o "oci:$W/$1" -o "docker-archive:$W/$1.docker.tar:bench:$1" \
     -o "oci-archive:$W/$1.oci.tar:bench:$1" >/dev/null)
}
build v1
build v2
size() { stat -c %s "$1"; }
now() { date +%s.%N; }
results=$W/results.txt
: > "$results"
record() { echo "$*" >> "$results"; }   # engine scenario tool seconds bytes
teu_load() { # ENGINE_ENV DST SRC -> "seconds bytes"
  local t0 t1 out
  t0=$(now)
  out=$(env "$1" "$TEU" load "$3" "$2" --json 2>"$W/teu.err") || { cat "$W/teu.err" >&2; exit 1; }
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine"]["bytes_sent"])')"
}
timed() { local t0 t1; t0=$(now); "$@" >/dev/null 2>"$W/timed.err" || { cat "$W/timed.err" >&2; exit 1; }; t1=$(now); echo "$t1 - $t0" | bc; }

# --- Docker
D=$W/docker; mkdir -p "$D"
dockerd --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/docker.pid" -H "unix://$D/docker.sock" \
  --storage-driver vfs --iptables=false --ip6tables=false --bridge=none --ip-masq=false >"$D/log" 2>&1 &
pids+=($!)
DH="DOCKER_HOST=unix://$D/docker.sock"
for _ in $(seq 200); do env "$DH" docker version >/dev/null 2>&1 && break; sleep 0.1; done
dk() { env "$DH" docker "$@"; }
s=$(timed dk load -i "$W/v1.docker.tar"); record docker first engine "$s" "$(size "$W/v1.docker.tar")"
dk rmi -f bench:v1 >/dev/null
read -r s b < <(teu_load "$DH" docker-daemon:bench:v1 "oci:$W/v1"); record docker first teu "$s" "$b"
read -r s b < <(teu_load "$DH" docker-daemon:bench:v2 "oci:$W/v2"); record docker changed teu "$s" "$b"
dk rmi -f bench:v2 >/dev/null
s=$(timed dk load -i "$W/v2.docker.tar"); record docker changed engine "$s" "$(size "$W/v2.docker.tar")"

# --- podman (its service, on private storage)
P=$W/podman; mkdir -p "$P"
pm() { podman --storage-driver vfs --root "$P/root" --runroot "$P/run" --cgroup-manager cgroupfs \
  --events-backend file --tmpdir "$P/tmp" "$@"; }
# Started without the function, so that $! is podman itself (and cleanup stops it).
podman --storage-driver vfs --root "$P/root" --runroot "$P/run" --cgroup-manager cgroupfs \
  --events-backend file --tmpdir "$P/tmp" system service --time=0 "unix://$P/podman.sock" >"$P/log" 2>&1 &
pids+=($!)
PH="CONTAINER_HOST=unix://$P/podman.sock"
for _ in $(seq 200); do [ -S "$P/podman.sock" ] && break; sleep 0.1; done
s=$(timed pm load -i "$W/v1.docker.tar"); record podman first engine "$s" "$(size "$W/v1.docker.tar")"
pm rmi -f docker.io/library/bench:v1 >/dev/null
read -r s b < <(teu_load "$PH" podman:bench:v1 "oci:$W/v1"); record podman first teu "$s" "$b"
read -r s b < <(teu_load "$PH" podman:bench:v2 "oci:$W/v2"); record podman changed teu "$s" "$b"
pm rmi -f docker.io/library/bench:v2 >/dev/null
s=$(timed pm load -i "$W/v2.docker.tar"); record podman changed engine "$s" "$(size "$W/v2.docker.tar")"

# --- containerd (a namespace per tool: content is per namespace)
C=$W/ctrd; mkdir -p "$C"
cat > "$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
[metrics]
  address = ""
EOF
containerd --config "$C/config.toml" >"$C/log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do ctr --address "$C/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
CH="CONTAINERD_ADDRESS=$C/containerd.sock"
ci() { ctr --address "$C/containerd.sock" -n ctr images import --no-unpack "$1"; }
s=$(timed ci "$W/v1.oci.tar"); record containerd first engine "$s" "$(size "$W/v1.oci.tar")"
read -r s b < <(teu_load "$CH" containerd:teu/bench:v1 "oci:$W/v1"); record containerd first teu "$s" "$b"
read -r s b < <(teu_load "$CH" containerd:teu/bench:v2 "oci:$W/v2"); record containerd changed teu "$s" "$b"
s=$(timed ci "$W/v2.oci.tar"); record containerd changed engine "$s" "$(size "$W/v2.oci.tar")"

# --- the changed layer, for the containerd goal
app_layer=$(python3 - "$W/v2" <<'EOF'
import json, sys, os
d = sys.argv[1]
ix = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs/sha256", ix["manifests"][0]["digest"][7:])))
print(m["layers"][-1]["size"] + m["config"]["size"] + ix["manifests"][0]["size"])
EOF
)
python3 - "$results" "$app_layer" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
limit = int(sys.argv[2])
r = {(e, s, t): (float(sec), int(b)) for e, s, t, sec, b in rows}
print(f"changed layer + config + manifest: {limit} bytes")
print(f"| engine | scenario | engine's load: s / bytes | teu load: s / bytes | teu/engine time | teu/engine bytes |")
print(f"| --- | --- | --- | --- | --- | --- |")
for e in ["docker", "podman", "containerd"]:
    for s in ["first", "changed"]:
        es, eb = r[(e, s, "engine")]
        ts, tb = r[(e, s, "teu")]
        print(f"| {e} | {s} | {es:.2f} s / {eb:,} | {ts:.2f} s / {tb:,} | {ts/es:.2f}x | {tb/eb:.4f}x |")
print()
for e in ["docker", "podman", "containerd"]:
    es, eb = r[(e, "changed", "engine")]
    ts, tb = r[(e, "changed", "teu")]
    wall = "met" if ts <= 0.5 * es else "not met"
    line = f"{e}, after one changed file: wall {ts:.2f} s vs {es:.2f} s (goal <= 0.5x): {wall}"
    if e == "containerd":
        line += f"; bytes {tb:,} vs limit {limit:,}: {'met' if tb <= limit else 'not met'}"
    print(line)
EOF

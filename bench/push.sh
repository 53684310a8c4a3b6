#!/usr/bin/env bash
# Push benchmarks: teu against skopeo on the same images and the same local registry, in
# one run. Prints a table (bytes up and down through a counting proxy, wall time) and the
# teu/skopeo ratios.
#
#   bench/push.sh                  # base of 64+16 MiB, app layer of 4 MiB
#   BASE_MIB=200 bench/push.sh     # a bigger base
#
# Scenarios, each for both tools:
#   fresh   push to an empty repository of a registry that already holds the base
#   repush  the same image again
#   changed one file of the app changed
#
# How each tool is run (the way a user would):
#   teu     teu build app/ -o REGISTRY/teu-app:TAG   (build on the registry base and push)
#   teu-push teu push oci:app-full:TAG REGISTRY/tp-app:TAG   (the same layout skopeo pushes)
#   skopeo  skopeo copy oci:app-full:TAG docker://REGISTRY/sk-app:TAG
#           (the same image, already complete in an OCI layout; building it is not timed)
# skopeo runs with an empty blob-info cache, as on a fresh CI runner.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_MIB=${BASE_MIB:-64}
SMALL_MIB=${SMALL_MIB:-16}
APP_MIB=${APP_MIB:-4}
TEU=${TEU:-target/release/teu}
[ -x "$TEU" ] || cargo build --release -q -p teu
for t in docker-registry skopeo python3; do
  command -v "$t" >/dev/null || { echo "bench/push.sh: $t is missing (scripts/test installs it)" >&2; exit 1; }
done

work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

reg_port=$(free_port)
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$reg_port
YML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" & pids+=($!)
proxy_port=$(free_port)
python3 bench/byte_proxy.py "$proxy_port" "127.0.0.1:$reg_port" "$work/counters" & pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/counters" ] && python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$reg_port/v2/')" 2>/dev/null && break
  sleep 0.1
done
REG=127.0.0.1:$reg_port     # direct, for untimed setup
PROXY=127.0.0.1:$proxy_port # counted

export TEU_HOME=$work/teu-home DOCKER_CONFIG=$work/docker
export HOME=$work/home      # skopeo's blob-info cache and auth live under $HOME for non-root
mkdir -p "$HOME" "$DOCKER_CONFIG"
sk_cache() { rm -rf /var/lib/containers/cache/blob-info-cache-v1.sqlite "$HOME/.local/share/containers/cache" 2>/dev/null || true; }

rand() { python3 -c "import os,random,sys; r=random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])*1048576))" "$1" "$2"; }

# The base: two uncompressible layers, pushed once (untimed).
mkdir -p "$work/base" "$work/app"
rand "$BASE_MIB" 1 > "$work/base/big.bin"
rand "$SMALL_MIB" 2 > "$work/base/small.bin"
cat > "$work/base/teu.toml" <<TOML
[image]
base = "scratch"
compression = "none"
[[layer]]
name = "big"
copy = [{ src = "big.bin", dest = "/big.bin" }]
[[layer]]
name = "small"
copy = [{ src = "small.bin", dest = "/small.bin" }]
TOML
"$TEU" build "$work/base" -q -o "$REG/base:1" >/dev/null

rand "$APP_MIB" 3 > "$work/app/lib.bin"
echo v1 > "$work/app/app.txt"
app_spec() {
  cat > "$work/app/teu.toml" <<TOML
[image]
base = "$1/base:1"
compression = "gzip"
[[layer]]
name = "lib"
copy = [{ src = "lib.bin", dest = "/lib.bin" }]
[[layer]]
name = "app"
copy = [{ src = "app.txt", dest = "/app.txt" }]
TOML
}

counters() { sleep 0.3; cat "$work/counters"; }
results=()
# measure NAME TOOL CMD...: wall time and proxy bytes of one command.
measure() {
  local scenario=$1 tool=$2; shift 2
  read -r u0 d0 < <(counters)
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  read -r u1 d1 < <(counters)
  results+=("$scenario $tool $((u1 - u0)) $((d1 - d0)) $(python3 -c "print(f'{$t1-$t0:.3f}')")")
}

# The complete image for skopeo, written from the registry directly (untimed).
full_layout() {
  app_spec "$REG"
  "$TEU" build "$work/app" -q -o "oci:$work/app-full:$1" >/dev/null
  app_spec "$PROXY"
}

full_layout 1
sk_cache
measure fresh teu "$TEU" build "$work/app" -q -o "$PROXY/teu-app:1"
measure fresh teu-push "$TEU" push -q "oci:$work/app-full:1" "$PROXY/tp-app:1"
measure fresh skopeo skopeo copy -q --dest-tls-verify=false "oci:$work/app-full:1" "docker://$PROXY/sk-app:1"
measure repush teu "$TEU" build "$work/app" -q -o "$PROXY/teu-app:1"
measure repush teu-push "$TEU" push -q "oci:$work/app-full:1" "$PROXY/tp-app:1"
measure repush skopeo skopeo copy -q --dest-tls-verify=false "oci:$work/app-full:1" "docker://$PROXY/sk-app:1"
echo v2 > "$work/app/app.txt"
full_layout 2
measure changed teu "$TEU" build "$work/app" -q -o "$PROXY/teu-app:2"
measure changed teu-push "$TEU" push -q "oci:$work/app-full:2" "$PROXY/tp-app:2"
measure changed skopeo skopeo copy -q --dest-tls-verify=false "oci:$work/app-full:2" "docker://$PROXY/sk-app:2"

kib() { python3 -c "print(f'{$1/1024:.1f}')"; }
echo
echo "Push: base ${BASE_MIB}+${SMALL_MIB} MiB (uncompressed layers), app layer ${APP_MIB} MiB; registry on loopback"
echo
printf '| scenario | tool | KiB up | KiB down | wall s |\n| --- | --- | ---: | ---: | ---: |\n'
for r in "${results[@]}"; do
  read -r s t u d w <<<"$r"
  printf '| %s | %s | %s | %s | %s |\n' "$s" "$t" "$(kib "$u")" "$(kib "$d")" "$w"
done
echo
printf '| scenario | tool | bytes up vs skopeo | bytes down vs skopeo | wall vs skopeo |\n| --- | --- | ---: | ---: | ---: |\n'
for s in fresh repush changed; do
  read -r _ _ su sd sw <<<"$(printf '%s\n' "${results[@]}" | grep "^$s skopeo ")"
  for t in teu teu-push; do
    read -r _ _ tu td tw <<<"$(printf '%s\n' "${results[@]}" | grep "^$s $t ")"
    printf '| %s | %s | %s | %s | %s |\n' "$s" "$t" \
      "$(python3 -c "print(f'{$tu/max($su,1):.3f}')")" "$(python3 -c "print(f'{$td/max($sd,1):.3f}')")" \
      "$(python3 -c "print(f'{$tw/$sw:.2f}')")"
  done
done

#!/usr/bin/env python3
"""The cache's own cost for one client, without skopeo: one blob at a time over the
throttled link, straight (curl from bench/throttle_proxy.py) and through a cold
`teu serve` (curl from the cache, which fetches over a second, identical link),
alternating, each run a blob never asked for before.

    bench/proxy_overhead.py TEU RATE_MBPS MIB RUNS    # e.g. target/release/teu 30 50 6

Run from the repository root. Prints each run's time to first byte and total, and the
medians. Needs docker-registry, curl and python3.
"""
import hashlib, os, random, socket, subprocess, sys, tempfile, time, urllib.request

teu, rate, mib, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
work = tempfile.mkdtemp(prefix="teu-ovh.")
procs = []
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def wait(addr):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{addr}/v2/"); return
        except Exception as e:
            if hasattr(e, "code"): return
            time.sleep(0.05)
    raise SystemExit(f"{addr} did not start")
up = f"127.0.0.1:{port()}"
open(f"{work}/up.yml", "w").write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {work}/up\nhttp:\n  addr: {up}\n")
procs.append(subprocess.Popen(["docker-registry", "serve", f"{work}/up.yml"], stderr=subprocess.DEVNULL))
wait(up)
links = {}
for name in ["direct", "teu"]:
    p = port(); links[name] = f"127.0.0.1:{p}"
    procs.append(subprocess.Popen(["python3", "bench/throttle_proxy.py", str(p), up, str(rate), f"{work}/link-{name}"]))
time.sleep(0.5)
r = random.Random(5)
digests = []
for i in range(2 * runs):
    b = r.randbytes(mib << 20)
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    req = urllib.request.Request(f"http://{up}/v2/library/big/blobs/uploads/", method="POST")
    loc = urllib.request.urlopen(req).headers["Location"]
    sep = "&" if "?" in loc else "?"
    url = loc if loc.startswith("http") else f"http://{up}{loc}"
    urllib.request.urlopen(urllib.request.Request(f"{url}{sep}digest={d}", data=b, method="PUT",
        headers={"Content-Type": "application/octet-stream"}))
    digests.append(d)
tp = port(); taddr = f"127.0.0.1:{tp}"
open(f"{work}/teu.toml", "w").write(f'listen = "{taddr}"\nstorage = "{work}/teu"\n[[upstream]]\nname = "docker.io"\nurl = "http://{links["teu"]}"\n')
procs.append(subprocess.Popen([teu, "serve", "--config", f"{work}/teu.toml"], env={**os.environ, "TEU_SERVE_LOG": "warn"}))
wait(taddr)
def curl(url):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer} %{time_total} %{size_download}", url],
        capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "200" and int(out[3]) == mib << 20, out
    return float(out[1]), float(out[2])
ideal = (mib << 20) / (rate * 1e6)
print(f"blob {mib} MiB, link {rate:g} MB/s: {ideal:.3f} s at best")
res = {"direct": [], "teu": []}
for i in range(runs):
    for name, d in [("direct", digests[2 * i]), ("teu", digests[2 * i + 1])]:
        url = f"http://{links['direct']}/v2/library/big/blobs/{d}" if name == "direct" else f"http://{taddr}/v2/docker.io/library/big/blobs/{d}"
        time.sleep(1)
        ttfb, total = curl(url)
        res[name].append(total)
        print(f"{name:6} run {i}: first byte {ttfb:.3f} s, total {total:.3f} s ({total / ideal:.3f}x)")
for name, ts in res.items():
    ts.sort()
    print(f"{name}: median {ts[len(ts)//2]:.3f} s ({ts[len(ts)//2] / ideal:.3f}x)")
for p in procs: p.terminate()

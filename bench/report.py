#!/usr/bin/env python3
"""Print the benchmark table (markdown) from bench/run.sh's results directory."""
import json
import os
import sys

results, corpus = sys.argv[1], sys.argv[2]


def median(name):
    p = os.path.join(results, name + ".json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["results"][0]["median"]


def ms(v):
    return "n/a" if v is None else f"{v * 1000:.0f} ms" if v >= 0.1 else f"{v * 1000:.1f} ms"


def ratio(a, b):
    return None if a is None or b is None else a / b


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}x"


def files_and_mb(name):
    n, total = 0, 0
    for line in open(os.path.join(corpus, name + ".list")):
        n += 1
        total += int(line.split("\t")[1])
    return n, total / 1e6


umoci = median("umoci-insert")
buildah = median("buildah")
floors = {"zstd": median("floor-zstd"), "gzip": median("floor-pigz")}
sizes = dict(line.split() for line in open(os.path.join(results, "sizes.txt")))
sizes = {k: int(v) for k, v in sizes.items()}

app_n, app_mb = files_and_mb("app")
base_n, base_mb = files_and_mb("base")
print(f"Corpus: app {app_n} files / {app_mb:.1f} MB, base {base_n} files / {base_mb:.1f} MB.\n")
print("| scenario | teu | umoci insert | buildah | floor | teu / umoci | teu / floor |")
print("| --- | --- | --- | --- | --- | --- | --- |")
goals = []
for algo in ["gzip", "zstd"]:
    floor_name = "tar \\| pigz -6" if algo == "gzip" else "tar \\| zstd -3 -T0"
    for scen in ["cold", "noop", "onefile"]:
        t = median(f"teu-{scen}-{algo}")
        floor = floors[algo] if scen == "cold" else None
        print(
            f"| {scen} {algo} | {ms(t)} | {ms(umoci)} | {ms(buildah)} | "
            f"{ms(floor) + ' (' + floor_name + ')' if floor else ''} | "
            f"{fmt_ratio(ratio(t, umoci))} | {fmt_ratio(ratio(t, floor)) if floor else ''} |"
        )
    goals.append((f"no-op {algo} <= 0.05x umoci insert", ratio(median(f"teu-noop-{algo}"), umoci), 0.05))
    goals.append((f"no-op {algo} <= 10 ms (stretch)", median(f"teu-noop-{algo}"), 0.010))
    goals.append((f"one file {algo} <= 0.15x umoci insert", ratio(median(f"teu-onefile-{algo}"), umoci), 0.15))
umoci_base = median("umoci-insert-base")
for algo in ["gzip", "zstd"]:
    t = median(f"teu-base-onefile-{algo}")
    print(f"| base-sized one file {algo} | {ms(t)} | {ms(umoci_base)} (base tree) | | | {fmt_ratio(ratio(t, umoci_base))} | |")
    goals.append((f"base-sized one file {algo} <= 0.15x umoci insert", ratio(t, umoci_base), 0.15))
for algo in ["gzip", "zstd"]:
    t = median(f"teu-ten-{algo}")
    per = None if t is None else t / 10
    print(f"| ten one-file builds {algo}, per build | {ms(per)} | {ms(umoci)} | | | {fmt_ratio(ratio(per, umoci))} | |")
goals.append(("cold zstd <= 1.2x tar|zstd -3 -T0", ratio(median("teu-cold-zstd"), floors["zstd"]), 1.2))
goals.append(("cold gzip <= 0.5x tar|pigz -6", ratio(median("teu-cold-gzip"), floors["gzip"]), 0.5))

print("\n| tarball layer | cold | second build (hit) | hit / cold |")
print("| --- | --- | --- | --- |")
for spec, what in [("hello", "examples/hello (vendor.tar.gz)"), ("tgz-norm", "app as .tar.gz, normalized"), ("tgz-verb", "app as .tar.gz, verbatim")]:
    c, h = median(f"teu-{spec}-cold"), median(f"teu-{spec}-hit")
    print(f"| {what} | {ms(c)} | {ms(h)} | {fmt_ratio(ratio(h, c))} |")
    goals.append((f"{what}: second build <= 0.1x cold", ratio(h, c), 0.1))

print("\n| layer size | bytes | relative |")
print("| --- | --- | --- |")
print(f"| tar | {sizes['tar']:,} | |")
rows = [
    ("gzip-6", None),
    ("pigz-6", None),
    ("teu-gzip-1stream", "gzip-6"),
    ("teu-gzip", "gzip-6"),
    ("teu-gzip", "teu-gzip-1stream"),
    ("zstd-3", None),
    ("teu-zstd-1stream", "zstd-3"),
    ("teu-zstd", "zstd-3"),
    ("teu-zstd", "teu-zstd-1stream"),
]
for name, ref in rows:
    rel = f"{(sizes[name] / sizes[ref] - 1) * 100:+.2f}% vs {ref}" if ref else ""
    print(f"| {name} | {sizes[name]:,} | {rel} |")
    if ref and name.startswith("teu-") and not name.endswith("1stream"):
        goals.append((f"{name} size within 3% of {ref}", sizes[name] / sizes[ref] - 1, 0.03))

def cpu(name):
    p = os.path.join(results, name + ".json")
    if not os.path.exists(p):
        return None
    r = json.load(open(p))["results"][0]
    return r["user"] + r["system"]


# CPU time (user + sys, means) does not grow with other load on a shared machine the way
# wall time does: the ratios below are the ones to trust when the load average is high.
print("\n| scenario | teu CPU | reference | reference CPU | CPU ratio |")
print("| --- | --- | --- | --- | --- |")
for name, ref, what in [
    ("teu-cold-gzip", "floor-pigz", "tar | pigz -6"),
    ("teu-cold-zstd", "floor-zstd", "tar | zstd -3 -T0"),
    ("teu-noop-gzip", "umoci-insert", "umoci insert"),
    ("teu-onefile-gzip", "umoci-insert", "umoci insert"),
    ("teu-onefile-zstd", "umoci-insert", "umoci insert"),
    ("teu-base-onefile-gzip", "umoci-insert-base", "umoci insert (base tree)"),
    ("teu-base-onefile-zstd", "umoci-insert-base", "umoci insert (base tree)"),
]:
    c, r = cpu(name), cpu(ref)
    print(f"| {name[4:]} | {ms(c)} | {what.replace('|', chr(92) + '|')} | {ms(r)} | {fmt_ratio(ratio(c, r))} |")
try:
    load = open("/proc/loadavg").read().split()[:3]
    print(f"\nLoad average when the table was printed: {' '.join(load)}.")
except OSError:
    pass

print("\n| goal | measured | holds |")
print("| --- | --- | --- |")
for what, value, limit in goals:
    if value is None:
        print(f"| {what} | n/a | n/a |")
        continue
    shown = f"{value * 100:+.2f}%" if what.startswith("teu-") else (ms(value) if "ms" in what else f"{value:.3f}x")
    print(f"| {what} | {shown} | {'yes' if value <= limit else 'NO'} |")

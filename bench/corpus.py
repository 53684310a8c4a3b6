#!/usr/bin/env python3
"""Generate the benchmark corpus from this machine's /usr, deterministically.

  bench/corpus.py DIR [--smoke]   writes DIR/app (~50 MB, 2,000 files) and DIR/base (~400-500 MB,
                             7,000 files), plus DIR/app.list and DIR/base.list (path, size)

Files are real binaries and text, chosen by sorted path with a fixed stride, so the same
machine (same Debian packages) always gives the same corpus; another machine gives a
similar one. Copies keep the executable bit; mtimes are set to a fixed date so that a
fresh corpus does not look "racy" to teu's stat cache on its first rebuild.
"""
import os
import shutil
import sys

FIXED_MTIME = 1_700_000_000


def regular_files(roots, max_size):
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                if 0 < st.st_size <= max_size and os.access(p, os.R_OK):
                    out.append((p, st.st_size))
    out.sort()
    return out


def pick(pool, stride, max_files, max_bytes):
    chosen, total = [], 0
    for i, (p, size) in enumerate(pool):
        if i % stride:
            continue
        if len(chosen) >= max_files or total + size > max_bytes:
            break
        chosen.append((p, size))
        total += size
    return chosen


def copy(chosen, dest):
    for src, _ in chosen:
        rel = src.lstrip("/")
        to = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(to), exist_ok=True)
        shutil.copyfile(src, to)
        os.chmod(to, 0o755 if os.stat(src).st_mode & 0o100 else 0o644)
        os.utime(to, (FIXED_MTIME, FIXED_MTIME))


def main():
    out = sys.argv[1]
    # --smoke: a corpus of a few MB, for a harness check that runs in seconds.
    k = 20 if "--smoke" in sys.argv[2:] else 1
    if os.path.exists(os.path.join(out, "app.list")):
        return  # already generated
    binaries = pick(regular_files(["/usr/bin", "/usr/sbin"], 4 << 20), 1, 400 // k, (38 << 20) // k)
    text = pick(regular_files(["/usr/share"], 256 << 10), 17, 2000 // k - len(binaries), (14 << 20) // k)
    # Files under 6 KiB are left out of the base so 7,000 files come near 500 MB.
    lib = [f for f in regular_files(["/usr/lib", "/usr/share", "/usr/libexec"], 16 << 20) if f[1] >= 6144]
    base = pick(lib, 2, 7000 // k, (500 << 20) // k)
    for name, chosen in [("app", binaries + text), ("base", base)]:
        copy(chosen, os.path.join(out, name))
        with open(os.path.join(out, name + ".list"), "w") as f:
            for p, size in chosen:
                f.write(f"{p}\t{size}\n")
        total = sum(s for _, s in chosen)
        print(f"corpus {name}: {len(chosen)} files, {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A throttled TCP proxy standing in for a slow upstream link, for bench/proxy.sh.

    throttle_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT RATE_MB_PER_S COUNTER_FILE

Bytes from the upstream back to clients ("down", HTTP headers included) share one
token bucket of RATE MB/s across all connections, as a single WAN link would. Requests
are counted by their request lines in the client-to-upstream direction (each request's
head arrives in one piece on loopback). COUNTER_FILE holds "down requests" and is
rewritten as they change; COUNTER_FILE.log gets each request line.
"""
import re
import socket
import sys
import threading
import time

listen_port, upstream, rate, counter_file = (
    int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) * 1e6, sys.argv[4])
up_host, up_port = upstream.rsplit(":", 1)
lock = threading.Lock()
totals = {"down": 0, "requests": 0}
link = {"free_at": 0.0}
REQ = re.compile(rb"(?m)^(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/\S*)")


last_save = {"at": 0.0}


def save(force=False):
    # Rewriting the file for every chunk capped one connection below 30 MB/s; a reader
    # waits for the link to go idle anyway, and the last write of each connection forces.
    now = time.monotonic()
    if not force and now - last_save["at"] < 0.2:
        return
    last_save["at"] = now
    with open(counter_file + ".tmp", "w") as f:
        f.write(f"{totals['down']} {totals['requests']}\n")
    import os
    os.replace(counter_file + ".tmp", counter_file)


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def upward(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            found = REQ.findall(data)
            if found:
                with lock:
                    totals["requests"] += len(found)
                    save(force=True)
                    with open(counter_file + ".log", "a") as log:
                        for m, p in found:
                            log.write(f"{m.decode()} {p.decode()}\n")
            dst.sendall(data)
    except OSError:
        pass
    finally:
        close(src, dst)


def downward(src, dst):
    try:
        while True:
            data = src.recv(1 << 18)
            if not data:
                break
            with lock:
                start = max(time.monotonic(), link["free_at"])
                link["free_at"] = start + len(data) / rate
                due = link["free_at"]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            dst.sendall(data)
            with lock:
                totals["down"] += len(data)
                save()
    except OSError:
        pass
    finally:
        with lock:
            save(force=True)
        close(src, dst)


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(128)
    save()
    while True:
        c, _ = srv.accept()
        u = socket.create_connection((up_host, int(up_port)))
        threading.Thread(target=upward, args=(c, u), daemon=True).start()
        threading.Thread(target=downward, args=(u, c), daemon=True).start()


main()

#!/usr/bin/env python3
"""A TCP proxy that counts bytes each way, for bench/push.sh.

    byte_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT COUNTER_FILE

Bytes from clients to the upstream are "up", bytes back are "down" (HTTP headers
included, the same for every tool). COUNTER_FILE holds "up down" and is rewritten after
every chunk, so a reader sees the totals once the client has finished.
"""
import socket
import sys
import threading

listen_port, upstream, counter_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
up_host, up_port = upstream.rsplit(":", 1)
lock = threading.Lock()
totals = {"up": 0, "down": 0}


def save():
    with open(counter_file + ".tmp", "w") as f:
        f.write(f"{totals['up']} {totals['down']}\n")
    import os
    os.replace(counter_file + ".tmp", counter_file)


def pipe(src, dst, key):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
            with lock:
                totals[key] += len(data)
                save()
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(128)
    with lock:
        save()
    while True:
        c, _ = srv.accept()
        u = socket.create_connection((up_host, int(up_port)))
        threading.Thread(target=pipe, args=(c, u, "up"), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c, "down"), daemon=True).start()


serve()

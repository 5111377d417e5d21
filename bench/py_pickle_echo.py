#!/usr/bin/env python3
"""The Python echo server of the pickle_roundtrip_vs_python benchmark: a Listener on
127.0.0.1 (authkey b'bench') that prints its port, accepts one client and sends back every
object it receives (conn.send(conn.recv())) until the client closes. The Node client
(bench/pickle.ts) and the CPython client (py_bench.py) both talk to this same server."""
from multiprocessing.connection import Listener

with Listener(("127.0.0.1", 0), authkey=b"bench") as listener:
    print(listener.address[1], flush=True)
    with listener.accept() as conn:
        try:
            while True:
                conn.send(conn.recv())
        except EOFError:
            pass

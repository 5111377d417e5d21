#!/usr/bin/env python3
"""CPython's figures for the cases node-multiprocessing benchmarks, one JSON line each.

Run: python3 py_bench.py [--quick] [--first] [case ...]. Same measurements as
../shared/anchors/py_mp_bench.py, restricted to the cases asked for. With --first, each
case's first-call variant instead: its operations once in this fresh process, as a short
script sees them (the same as the Node scripts' --first, see bench/main.ts).
"""
import json, multiprocessing as mp, sys, time

QUICK = "--quick" in sys.argv
FIRST = "--first" in sys.argv
WANTED = [a for a in sys.argv[1:] if not a.startswith("--")]
SCALE = 1 if QUICK else 5


def emit(case, value, unit):
    print(json.dumps({"case": case, "value": round(value, 3), "unit": unit}), flush=True)


def noop():
    pass


def pipe_echo(conn, n, ready=None):
    if ready is not None:
        ready.set()
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def process_start_join_spawn():
    ctx = mp.get_context("spawn")
    n = 5 * SCALE
    t = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    emit("process_start_join_spawn", (time.perf_counter() - t) / n * 1e3, "ms")


def process_start_join_forkserver():
    # As ../shared/anchors/py_mp_bench.py's bench_spawn("forkserver", 5 * SCALE).
    ctx = mp.get_context("forkserver")
    n = 5 * SCALE
    t = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    emit("process_start_join_forkserver", (time.perf_counter() - t) / n * 1e3, "ms")


def send_start_time(conn):
    conn.send(time.monotonic_ns())


def process_start_latency_forkserver():
    # start() to the target's first line, isolated starts 0.3 s apart after a first one
    # (the same loop as bench/forkserver.ts).
    ctx = mp.get_context("forkserver")

    def one():
        a, b = ctx.Pipe()
        p = ctx.Process(target=send_start_time, args=(b,))
        t = time.monotonic_ns()
        p.start()
        at = a.recv()
        p.join()
        return (at - t) / 1e6

    one()
    n = 2 * SCALE
    total = 0.0
    for _ in range(n):
        time.sleep(0.3)
        total += one()
    emit("process_start_latency_forkserver", total / n, "ms")


def pool_start_forkserver():
    # Pool(4) until the first result of a trivial task; the mean of 3 (the first starts the server).
    ctx = mp.get_context("forkserver")
    total = 0.0
    for _ in range(3):
        t = time.perf_counter()
        pool = ctx.Pool(4)
        pool.apply(square, (3,))
        total += time.perf_counter() - t
        pool.terminate()
        pool.join()
    emit("pool_start_forkserver", total / 3 * 1e3, "ms")


def pipe_roundtrip():
    n = 5000 * SCALE
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    p = ctx.Process(target=pipe_echo, args=(b, n + 1))
    p.start()
    a.send(0); a.recv()
    t = time.perf_counter()
    for i in range(n):
        a.send(i)
        a.recv()
    dt = time.perf_counter() - t
    p.join()
    emit("pipe_roundtrip", dt / n * 1e6, "us")


def lock_acquire_release():
    n = 200000 * SCALE
    lock = mp.Lock()
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    emit("lock_acquire_release", (time.perf_counter() - t) / n * 1e9, "ns")


def raw_array_elem_rw():
    n = 200000 * SCALE
    arr = mp.Array("d", n, lock=False)
    t = time.perf_counter()
    for i in range(n):
        arr[i] = i
    s = 0.0
    for i in range(n):
        s += arr[i]
    emit("raw_array_elem_rw", (time.perf_counter() - t) / (2 * n) * 1e9, "ns")


def locked_value_increment():
    n = 200000 * SCALE
    v = mp.Value("i", 0)
    t = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    emit("locked_value_increment", (time.perf_counter() - t) / n * 1e9, "ns")


def producer(q, n, payload, ready=None, go=None):
    if ready is not None:
        ready.set()
        go.wait()
    for _ in range(n):
        q.put(payload)
    q.put(None)


def _queue(n, payload, label):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=producer, args=(q, n, payload))
    p.start()
    q.get()
    t = time.perf_counter()
    got = 1
    while q.get() is not None:
        got += 1
    dt = time.perf_counter() - t
    p.join()
    emit(f"queue_throughput_{label}", (got - 1) / dt, "msg/s")
    if len(payload) > 100:
        emit(f"queue_bandwidth_{label}", (got - 1) * len(payload) / dt / 1e6, "MB/s")


def queue_throughput_8B():
    _queue(20000 * SCALE, b"x" * 8, "8B")


def queue_bandwidth_1MiB():
    _queue(200 * SCALE, b"x" * (1 << 20), "1MiB")


def client_echo(address, n):
    from multiprocessing.connection import Client
    with Client(address, authkey=b"bench") as c:
        for _ in range(n):
            c.send_bytes(c.recv_bytes())


def listener_client_roundtrip():
    from multiprocessing.connection import Listener
    n = 5000 * SCALE
    ctx = mp.get_context("spawn")
    with Listener(("127.0.0.1", 0), authkey=b"bench") as l:
        p = ctx.Process(target=client_echo, args=(l.address, n + 1))
        p.start()
        with l.accept() as c:
            c.send_bytes(b"x"); c.recv_bytes()
            t = time.perf_counter()
            for _ in range(n):
                c.send_bytes(b"12345678")
                c.recv_bytes()
            dt = time.perf_counter() - t
        p.join()
    emit("listener_client_roundtrip", dt / n * 1e6, "us")


def square(x):
    return x * x


def _pool_cases():
    n = 20000 * SCALE
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(square, range(100))
        t = time.perf_counter()
        pool.map(square, range(n))
        emit("pool_map_trivial", n / (time.perf_counter() - t), "task/s")
        t = time.perf_counter()
        rs = [pool.apply_async(square, (i,)) for i in range(n // 10)]
        for r in rs:
            r.get()
        emit("pool_apply_async_trivial", (n // 10) / (time.perf_counter() - t), "task/s")
        t = time.perf_counter()
        for _ in pool.imap_unordered(square, range(n // 10)):
            pass
        emit("pool_imap_unordered_chunk1", (n // 10) / (time.perf_counter() - t), "task/s")


def _threadpool_cases():
    # As ../shared/anchors/py_mp_bench.py's bench_threadpool(20000 * SCALE).
    from multiprocessing.pool import ThreadPool
    n = 20000 * SCALE
    with ThreadPool(2) as pool:
        pool.map(square, range(100))
        t = time.perf_counter()
        pool.map(square, range(n))
        emit("threadpool_map_trivial", n / (time.perf_counter() - t), "task/s")
        t = time.perf_counter()
        rs = [pool.apply_async(square, (i,)) for i in range(n // 10)]
        for r in rs:
            r.get()
        emit("threadpool_apply_async_trivial", (n // 10) / (time.perf_counter() - t), "task/s")


def pickle():
    # As ../shared/anchors/py_mp_bench.py's bench_pickle(20000 * SCALE).
    import pickle
    n = 20000 * SCALE
    small = {"id": 12345, "name": "node-multiprocessing", "ok": True, "score": 0.75, "tags": ["a", "b"]}
    big = {f"key{i}": i * 0.5 for i in range(1000)}
    for label, obj, k in (("small", small, n), ("1k", big, max(1, n // 100))):
        data = pickle.dumps(obj, protocol=4)
        t = time.perf_counter()
        for _ in range(k):
            pickle.dumps(obj, protocol=4)
        emit(f"pickle_dumps_{label}", (time.perf_counter() - t) / k * 1e6, "us")
        t = time.perf_counter()
        for _ in range(k):
            pickle.loads(data)
        emit(f"pickle_loads_{label}", (time.perf_counter() - t) / k * 1e6, "us")


def pickle_roundtrip_vs_python():
    # A CPython client of the same echo server the Node client talks to (py_pickle_echo.py).
    import os, subprocess
    from multiprocessing.connection import Client
    n = 2000 * SCALE
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_pickle_echo.py")],
                              stdout=subprocess.PIPE)
    port = int(server.stdout.readline())
    with Client(("127.0.0.1", port), authkey=b"bench") as c:
        msg = {"id": 1, "name": "req", "ok": True, "score": 0.5, "tags": ["a"]}
        c.send(msg); c.recv()
        t = time.perf_counter()
        for i in range(n):
            msg["id"] = i
            c.send(msg)
            if c.recv()["id"] != i:
                raise SystemExit("wrong reply")
        dt = time.perf_counter() - t
    server.wait()
    emit("pickle_roundtrip_vs_python", dt / n * 1e6, "us")


def manager():
    # The anchors' bench_manager: one blocking call at a time. CPython has no pipelined form:
    # its blocking figure is also what manager_dict_op_pipelined is compared with.
    n = 2000 * SCALE
    with mp.get_context("spawn").Manager() as m:
        d = m.dict()
        t = time.perf_counter()
        for i in range(n):
            d[i] = i
        for i in range(n):
            d[i]
        rate = (2 * n) / (time.perf_counter() - t)
        emit("manager_dict_op", rate, "op/s")
        emit("manager_dict_op_pipelined", rate, "op/s")
        k = 100 * SCALE
        m.dict()
        t = time.perf_counter()
        for _ in range(k):
            x = m.dict()
            del x
        emit("manager_create_object", k / (time.perf_counter() - t), "obj/s")


CASES = {
    "process_start_join_spawn": process_start_join_spawn,
    "pipe_roundtrip": pipe_roundtrip,
    "lock_acquire_release": lock_acquire_release,
    "raw_array_elem_rw": raw_array_elem_rw,
    "locked_value_increment": locked_value_increment,
    "queue_throughput_8B": queue_throughput_8B,
    "queue_bandwidth_1MiB": queue_bandwidth_1MiB,
    "listener_client_roundtrip": listener_client_roundtrip,
    "pool": _pool_cases,
    "threadpool": _threadpool_cases,
    "pickle": pickle,
    "pickle_roundtrip_vs_python": pickle_roundtrip_vs_python,
    "manager": manager,
    "process_start_join_forkserver": process_start_join_forkserver,
    "process_start_latency_forkserver": process_start_latency_forkserver,
    "pool_start_forkserver": pool_start_forkserver,
}


# ---- first-call variants (--first) ------------------------------------------------------

def process_start_join_spawn_first():
    ctx = mp.get_context("spawn")
    t = time.perf_counter()
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    emit("process_start_join_spawn_first", (time.perf_counter() - t) * 1e3, "ms")


def pipe_roundtrip_first():
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    ready = ctx.Event()
    p = ctx.Process(target=pipe_echo, args=(b, 1, ready))
    p.start()
    ready.wait()
    t = time.perf_counter()
    a.send(1)
    a.recv()
    dt = time.perf_counter() - t
    p.join()
    emit("pipe_roundtrip_first", dt * 1e6, "us")


def listener_client_roundtrip_first():
    from multiprocessing.connection import Listener
    ctx = mp.get_context("spawn")
    with Listener(("127.0.0.1", 0), authkey=b"bench") as l:
        p = ctx.Process(target=client_echo, args=(l.address, 1))
        p.start()
        with l.accept() as c:
            t = time.perf_counter()
            c.send_bytes(b"12345678")
            c.recv_bytes()
            dt = time.perf_counter() - t
        p.join()
    emit("listener_client_roundtrip_first", dt * 1e6, "us")


def _queue_first(size, label):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=producer, args=(q, 1, b"x" * size, ready, go))
    p.start()
    ready.wait()
    t = time.perf_counter()
    go.set()
    item = q.get()
    dt = time.perf_counter() - t
    assert len(item) == size
    q.get()
    p.join()
    emit(f"queue_get_{label}_first", dt * 1e6, "us")


def queue_first():
    _queue_first(8, "8B")
    _queue_first(1 << 20, "1MiB")


def pool_first():
    t = time.perf_counter()
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(square, range(10))
        emit("pool_map_first", (time.perf_counter() - t) * 1e3, "ms")
        t = time.perf_counter()
        pool.apply_async(square, (3,)).get()
        emit("pool_apply_async_first", (time.perf_counter() - t) * 1e6, "us")
        t = time.perf_counter()
        for _ in pool.imap_unordered(square, range(10)):
            pass
        emit("pool_imap_unordered_first", (time.perf_counter() - t) * 1e6, "us")


def threadpool_first():
    from multiprocessing.pool import ThreadPool
    t = time.perf_counter()
    with ThreadPool(2) as pool:
        pool.map(square, range(10))
        emit("threadpool_map_first", (time.perf_counter() - t) * 1e3, "ms")
        t = time.perf_counter()
        pool.apply_async(square, (3,)).get()
        emit("threadpool_apply_async_first", (time.perf_counter() - t) * 1e6, "us")


def lock_acquire_release_first():
    t = time.perf_counter()
    lock = mp.Lock()
    lock.acquire()
    lock.release()
    emit("lock_acquire_release_first", (time.perf_counter() - t) * 1e6, "us")


def raw_array_elem_rw_first():
    t = time.perf_counter()
    arr = mp.Array("d", 1000, lock=False)
    arr[0] = 1
    assert arr[0] == 1
    emit("raw_array_elem_rw_first", (time.perf_counter() - t) * 1e6, "us")


def locked_value_increment_first():
    t = time.perf_counter()
    v = mp.Value("i", 0)
    with v.get_lock():
        v.value += 1
    emit("locked_value_increment_first", (time.perf_counter() - t) * 1e6, "us")


def import_package_first():
    import subprocess
    code = ("import time; t = time.perf_counter(); import multiprocessing, multiprocessing.connection, "
            "multiprocessing.pool, multiprocessing.queues, multiprocessing.synchronize, multiprocessing.sharedctypes; "
            "print((time.perf_counter() - t) * 1e3)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    emit("import_package_first", float(out), "ms")


FIRST_CASES = {
    "import_package": import_package_first,
    "process_start_join_spawn": process_start_join_spawn_first,
    "pipe_roundtrip": pipe_roundtrip_first,
    "listener_client_roundtrip": listener_client_roundtrip_first,
    "queue": queue_first,
    "pool": pool_first,
    "threadpool": threadpool_first,
    "lock_acquire_release": lock_acquire_release_first,
    "raw_array_elem_rw": raw_array_elem_rw_first,
    "locked_value_increment": locked_value_increment_first,
}

if __name__ == "__main__":
    table = FIRST_CASES if FIRST else CASES
    for name in WANTED or table:
        table[name]()

"""The floor under an edge's fan-out: sender CPU per frame for bare `send()` calls on 127.0.0.1.

    python -m bench.send_floor [--connections 2000] [--out FILE]

No event loop, no hub: a process on the edge's core writes a 364-byte WebSocket frame (a
caption's size) to each of N loopback TCP connections, one `send()` per connection per round,
while a reader process on the other core drains them with epoll. With k frames joined into one
`send()`, the frames per sender CPU-second show what a write per frame costs in the kernel
(on loopback the receiver's TCP work and wake-up are charged to the sender's system call) and
what coalescing the frames of one read from Redis into one write per viewer would save.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

from bench.clients import raise_fd_limit

FRAME = b"\x81\x7e\x01\x68" + b"x" * 360  # a 360-byte text payload, as relay frames it
_ROUND_PAUSE_S = 0.002


def _drain(port: int, connections: int, core: int, ready: multiprocessing.synchronize.Event) -> None:
    """The reader: accept `connections`, read everything until they close."""
    os.sched_setaffinity(0, {core})
    raise_fd_limit(connections + 64)
    server = socket.create_server(("127.0.0.1", port), backlog=4096)
    ready.set()
    poll, socks = select.epoll(), {}
    while len(socks) < connections:
        conn, _ = server.accept()
        conn.setblocking(False)
        socks[conn.fileno()] = conn
        poll.register(conn.fileno(), select.EPOLLIN)
    while socks:
        for fd, _ in poll.poll(1.0):
            try:
                data = socks[fd].recv(1 << 18)
            except BlockingIOError:
                continue
            if not data:
                poll.unregister(fd)
                socks.pop(fd).close()


def measure_send_floor(connections: int = 2000, joined: tuple[int, ...] = (1, 2, 5, 10), seconds: float = 3.0,
                       sender_core: int = 0, reader_core: int = 1) -> dict[str, Any]:
    """Frames per sender CPU-second with k frames per send(), for each k in `joined`."""
    raise_fd_limit(connections + 64)
    spawn = multiprocessing.get_context("spawn")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = spawn.Event()
    reader = spawn.Process(target=_drain, args=(port, connections, reader_core, ready), name="reader")
    reader.start()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sender_core})
    result: dict[str, Any] = {"connections": connections, "frame_bytes": len(FRAME), "frames_per_send": {}}
    try:
        if not ready.wait(30):
            raise RuntimeError("the reader did not start")
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for conn in conns:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        time.sleep(0.5)
        for k in joined:
            payload, frames = FRAME * k, 0
            cpu, wall = time.process_time(), time.monotonic()
            while time.monotonic() - wall < seconds:
                for conn in conns:
                    conn.sendall(payload)
                frames += connections * k
                time.sleep(_ROUND_PAUSE_S)
            cpu = time.process_time() - cpu
            result["frames_per_send"][str(k)] = {"frames_per_cpu_second": round(frames / cpu),
                                                 "us_per_frame": round(cpu / frames * 1e6, 2)}
        for conn in conns:
            conn.close()
    finally:
        os.sched_setaffinity(0, before)
        reader.join(30)
        if reader.is_alive():
            reader.kill()
    return result


def main() -> None:
    from bench.relay_run import run_conditions, write_result

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    write_result({**run_conditions(), **measure_send_floor(args.connections)}, args.out)


if __name__ == "__main__":
    main()

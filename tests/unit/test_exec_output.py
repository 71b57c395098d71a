"""exec output survives arriving in the same packet as the response headers.

A real HTTP server on a unix socket answers like Docker and Podman do under load: the
``101 UPGRADED`` headers and the first output frame in one write. docker-py's own
``exec_start`` reads past the buffer holding that frame and returns nothing.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_criu.engine.base import read_frames
from pytest_criu.engine.docker import DockerEngine


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_frames_of_both_streams_in_order() -> None:
    wire = frame(1, b"out ") + frame(2, b"err ") + frame(1, b"") + frame(1, b"end\n")
    assert read_frames(io.BytesIO(wire)) == b"out err end\n"


def test_a_stream_cut_inside_a_header_ends_the_output() -> None:
    assert read_frames(io.BytesIO(frame(1, b"partial") + b"\x01\x00")) == b"partial"


def _answer(connection: socket.socket) -> None:
    with connection, connection.makefile("rb") as reader:
        while True:
            request = reader.readline().decode()
            if not request:
                return
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            reader.read(length)
            path = request.split()[1].split("?")[0]
            body: dict[str, object]
            if path.endswith("/exec/e1/start"):
                connection.sendall(
                    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                    b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + frame(1, b"seed\n")
                )
                return
            if path.endswith("/version"):
                body = {"ApiVersion": "1.41", "Version": "20.10.24"}
            elif path.endswith("/exec"):
                body = {"Id": "e1"}
            else:
                body = {"ExitCode": 0, "Running": False}
            payload = json.dumps(body).encode()
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    server.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_answer, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"unix://{path}"
    stop.set()
    with socket.socket(socket.AF_UNIX) as wake:  # unblocks accept()
        wake.connect(str(path))
    thread.join(timeout=10)
    server.close()


def test_output_sent_with_the_headers_is_kept(engine_socket: str) -> None:
    engine = DockerEngine(engine_socket, timeout=10)
    try:
        assert engine.exec("c1", ["ls", "/data"]) == (0, "seed\n")
        # What docker-py does with the same answer: the frame is gone.
        exec_id = engine.api.exec_create("c1", ["ls", "/data"])["Id"]
        assert engine.api.exec_start(exec_id) == b""
    finally:
        engine.close()

"""A response leaves in one write: the head waits for the body (see stratus.serving.http_guard)."""

from __future__ import annotations

import asyncio

import httptools
import pytest
import uvicorn
from uvicorn.server import ServerState

from stratus.serving.http_guard import guarded_protocol
from stratus.serving.limits import ServingLimits


class _RecordingTransport(asyncio.Transport):
    """The socket end: each ``write`` is one send; what was sent, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


async def _run(app: object, request: bytes) -> tuple[_RecordingTransport, object]:
    """Feed ``request`` to the real guarded uvicorn protocol running ``app``; its transport after."""
    config = uvicorn.Config(app, http="httptools", lifespan="off", access_log=False)
    config.load()
    transport = _RecordingTransport()
    protocol = guarded_protocol(ServingLimits())(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(20):
        await asyncio.sleep(0)
    return transport, protocol


async def _serve(body: bytes, request: bytes) -> list[bytes]:
    """One request answered with ``body``; the writes its answer took."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(send)
        length = (b"content-length", b"%d" % len(body))
        await send({"type": "http.response.start", "status": 200, "headers": [length]})
        await send({"type": "http.response.body", "body": body})

    transport, protocol = await _run(app, request)
    protocol.connection_lost(None)  # type: ignore[attr-defined]
    return transport.writes


_REQUEST = b"POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


@pytest.mark.asyncio
async def test_a_small_answer_is_one_write_with_head_and_body() -> None:
    writes = await _serve(b'{"ok":true}', _REQUEST)
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b'\r\n\r\n{"ok":true}')
    parser = httptools.HttpResponseParser(None)
    parser.feed_data(writes[0])
    assert parser.get_status_code() == 200


@pytest.mark.asyncio
async def test_a_large_body_goes_after_its_head_without_being_joined() -> None:
    big = b"x" * (200 * 1024)
    writes = await _serve(big, _REQUEST)
    assert len(writes) == 2
    assert writes[0].endswith(b"\r\n\r\n")
    assert writes[1] == big


@pytest.mark.asyncio
async def test_a_100_continue_is_sent_at_once_not_held() -> None:
    request = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
    )

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(receive)
        await receive()  # waits for the body: the client sends it only after the 100

    transport, protocol = await _run(app, request)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.connection_lost(None)  # type: ignore[attr-defined]

"""The servers the hub's fan-out is measured against, each in its own process.

- `bare`: the ceiling. A bare aiohttp server holding the same number of websockets
  (same auth handshake as the hub, nothing kept per socket but the socket) that, for
  each POST /view, answers at once and then sends the next of the hub's own event
  frames (the same pre-encoded bytes, captured from the hub run) to every socket, from
  one broadcasting task, awaiting each `send_frame` in turn (it only waits when a
  socket's buffer is full): no queue, no per-socket task, no encoding.
- `sio`: the peer. python-socketio's `AsyncServer` on aiohttp, each client in a room
  of its guild; each POST /view emits the same event (decoded once) to the room from
  one broadcasting task; python-socketio encodes it once per emit and gives each
  recipient its own send task, as a team picking it would use it.

`python -m bench.peers --role-args '{"role": "bare"|"sio", "port", "frames", "tokens"}'`
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from bench import common


def _frames(path: str) -> list[bytes]:
    return msgspec.msgpack.decode(Path(path).read_bytes(), type=list[bytes])


_SEQ = re.compile(rb'"seq":\d+')


def _frame(frames: list[bytes], n: int) -> bytes:
    """The n-th (0-based) event frame: the hub's own, renumbered past the recording."""
    frame = frames[n % len(frames)]
    if n >= len(frames):
        frame = _SEQ.sub(b'"seq":%d' % (n + 1), frame, count=1)
    return frame


class _Broadcaster:
    """One task sending queued items in order, so that POST answers never wait on it."""

    def __init__(self, send: Any) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._send = send
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def put(self, item: Any) -> None:
        self._queue.put_nowait(item)

    async def _run(self) -> None:
        while True:
            await self._send(await self._queue.get())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _upload_app(broadcaster: _Broadcaster, event_for: Callable[[int], Any]) -> web.Application:
    """The side both peers share: POST /view hands the n-th event to the broadcaster."""
    counter = {"n": 0}

    async def view(request: web.Request) -> web.Response:
        await request.read()
        n = counter["n"]
        counter["n"] += 1
        broadcaster.put(event_for(n))
        return web.json_response({"Info": "Job done", "seq": n + 1})

    async def lifecycle(app: web.Application) -> Any:
        broadcaster.start()
        yield
        await broadcaster.stop()

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/view", view)
    app.cleanup_ctx.append(lifecycle)
    return app


def bare_app(frames: list[bytes], tokens: set[str]) -> web.Application:
    """The ceiling: websockets and a broadcast of pre-encoded bytes, nothing else."""
    sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def broadcast(frame: bytes) -> None:
        for ws in list(sockets):
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_frame(frame, WSMsgType.TEXT)

    broadcaster = _Broadcaster(broadcast)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        await ws.send_frame(b'{"type":"auth_required"}', WSMsgType.TEXT)
        msg = await ws.receive(timeout=10)
        if msg.type != WSMsgType.TEXT and msg.type != WSMsgType.BINARY:
            return ws
        if json.loads(msg.data).get("token") not in tokens:
            await ws.close(code=4001)
            return ws
        await ws.send_frame(b'{"type":"auth_ok"}', WSMsgType.TEXT)
        msg = await ws.receive()
        command = json.loads(msg.data)
        await ws.send_frame(b'{"id":%d,"type":"result","success":true,"result":{"subscription":1}}'
                            % command["id"], WSMsgType.TEXT)
        sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    app = _upload_app(broadcaster, lambda n: _frame(frames, n))
    app.router.add_get("/ws", websocket)
    return app


def sio_app(frames: list[bytes], tokens: set[str]) -> web.Application:
    """The peer: python-socketio's AsyncServer, one room per guild."""
    import socketio

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> bool:
        if not isinstance(auth, dict) or auth.get("token") not in tokens:
            return False
        await sio.enter_room(sid, "guild")
        return True

    async def broadcast(event: Any) -> None:
        await sio.emit("event", event, room="guild")

    broadcaster = _Broadcaster(broadcast)

    # socket.io encodes the event itself, once per emit.
    app = _upload_app(broadcaster, lambda n: msgspec.json.decode(_frame(frames, n)))
    sio.attach(app)
    return app


def main() -> None:
    """Serve one of the peers until SIGTERM."""
    args = common.role_args()
    assert args is not None
    common.raise_nofile()
    frames = _frames(args["frames"])
    factory = bare_app if args["role"] == "bare" else sio_app
    web.run_app(factory(frames, set(args["tokens"])), host="127.0.0.1", port=args["port"],
                print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()

"""A small TCP proxy for network faults (there is no netem or toxiproxy here): in front of PostgreSQL or a service.

It runs an asyncio loop in its own thread and forwards bytes both ways. Faults, switched on and off from the
test's thread:
- latency: every chunk is held that many seconds before it is forwarded;
- pause: nothing is forwarded (bytes wait in the proxy) until resume(): a server that stops answering,
  like a SIGSTOPped PostgreSQL or a network that drops packets while TCP keeps retransmitting;
- blackhole: as pause, but when it ends the stalled connections are reset (TCP gave up) instead of resumed;
- reset_all(): every open connection is reset at once (RST, as when a server process dies);
- down: connections are reset and new ones refused at once (a server that was stopped hard), until up().
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.latency = 0.0
        self.connections_accepted = 0
        self._down = False
        self._flowing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def pause(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def blackhole(self, seconds: float) -> None:
        """Forward nothing for `seconds`, then reset the connections that were stalled (returns at once)."""
        self.pause()

        def end() -> None:
            self._reset_writers()
            self._flowing.set()

        self._loop.call_soon_threadsafe(self._loop.call_later, seconds, end)

    def reset_all(self) -> None:
        self._call(self._reset())

    def down(self) -> None:
        self._down = True
        self.reset_all()

    def up(self) -> None:
        self._down = False

    # --- inside the loop -------------------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_writers()

    async def _reset(self) -> None:
        self._reset_writers()

    def _reset_writers(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            _reset(writer)
            return
        self.connections_accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer),
                             return_exceptions=True)
        for w in (writer, upstream_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                await self._flowing.wait()
                if writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        finally:
            if not writer.is_closing():
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees 'connection reset', as when a process dies."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

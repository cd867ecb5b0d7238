"""The daemon's aiohttp app served in-process (in a thread with its own
loop), with extra test-only routes: for the framework pieces that have no
production route yet (hijack, progress streams, body streaming)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from types import ModuleType

from aiohttp import web

from dockyard.daemon.app import build_app
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.engine import Engine
from dockyard.daemon.services import open_engine


class InProcessDaemon:
    def __init__(self, root: Path, modules: list[ModuleType]) -> None:
        self.root = root
        self.sock = root / "t.sock"
        config = DaemonConfig(hosts=(f"unix://{self.sock}",), data_root=root / "data", exec_root=root / "exec")
        self.config = config
        self.engine: Engine | None = None
        self._services = contextlib.AsyncExitStack()
        self.modules = modules
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> "InProcessDaemon":
        self._thread.start()

        async def setup() -> None:
            # The daemon's own services on a private data root: the system
            # routes read real counts from them.
            self.engine = await self._services.enter_async_context(open_engine(self.config))
            app = build_app(self.engine, self.modules)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
            await self._runner.setup()
            await web.UnixSite(self._runner, str(self.sock)).start()

        self.call(setup())
        return self

    def stop(self) -> None:
        async def teardown() -> None:
            if self.engine is not None:
                self.engine.events.close()
            if self._runner is not None:
                await self._runner.cleanup()
            await self._services.aclose()

        try:
            self.call(teardown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

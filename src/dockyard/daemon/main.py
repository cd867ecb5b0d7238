"""dockyardd: parse flags and daemon.json, take the data root's lock, open
the services, serve the Engine API until SIGTERM/SIGINT.

Stopping the daemon never touches containers: their supervisors keep them
(live-restore is always on), and the next daemon re-adopts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from contextlib import ExitStack
from typing import Sequence

from dockyard import __version__
from dockyard.daemon.config import DaemonConfig, load_config
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.daemon")

#: Threads for blocking service calls.
DEFAULT_WORKERS = 64

#: How long shutdown waits for in-flight requests before closing them.
SHUTDOWN_TIMEOUT = 5.0


class LogfmtFormatter(logging.Formatter):
    """dockerd's log line shape: time="..." level=info msg="..."."""

    LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        stamp += f".{int(record.msecs * 1000):06d}"
        level = self.LEVELS.get(record.levelname, record.levelname.lower())
        msg = record.getMessage().replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level={level} msg="{msg}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(config: DaemonConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.effective_log_level)
    # aiohttp's access log is noise except when debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if config.debug else logging.WARNING)


async def serve(config: DaemonConfig, sockets: list[tuple[str, socket.socket, object]]) -> None:
    from aiohttp import web

    from dockyard.daemon.app import build_app
    from dockyard.daemon.services import open_engine

    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    # Service calls (database, files, runtime) run in the default executor;
    # Python's default of cpu+4 threads is too few for a daemon serving many
    # clients at once.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="dockyard"))
    async with open_engine(config) as engine:
        app = build_app(engine)
        runner = web.AppRunner(app, handle_signals=False, access_log=log if config.debug else None,
                               access_log_format='"%r" %s %b %Tfs', shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            # Published before the sockets open, so the first client to get an
            # answer can already see it.
            engine.events.publish("daemon", "start", engine.engine_id, {"name": socket.gethostname()})
            for name, sock, ssl_context in sockets:
                site = web.SockSite(runner, sock, ssl_context=ssl_context)  # type: ignore[arg-type]
                await site.start()
                log.info("API listen on %s", name)
            log.info("Daemon has completed initialization (dockyardd %s, data root %s)", __version__,
                     config.data_root)
            await stop.wait()
            log.info("Processing signal, shutting down (containers keep running: live-restore)")
        finally:
            # End the endless responses first (event streams), so the runner's
            # graceful wait is for real requests only; leaving open_engine then
            # closes the services.
            engine.events.close()
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, ns = load_config(argv)
    except DockyardError as e:
        print(f"dockyardd: {e.message}", file=sys.stderr)
        return 1
    setup_logging(config)
    from dockyard.daemon.listeners import bind_tcp, bind_unix, plan_listeners, tls_context
    from dockyard.daemon.lock import data_root_lock, pid_file

    try:
        listeners = plan_listeners(config)
        ssl_context = tls_context(config)
    except DockyardError as e:
        log.error("%s", e.message)
        return 1
    if ns.validate:
        print("configuration OK")
        return 0
    if os.geteuid() != 0:
        log.warning("dockyardd is not running as root: containers will not start")

    with ExitStack() as stack:
        try:
            stack.enter_context(data_root_lock(config.data_root))
            stack.enter_context(pid_file(config.pid_path))
            config.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
            sockets: list[tuple[str, socket.socket, object]] = []
            for listener in listeners:
                if listener.scheme == "unix":
                    sock = bind_unix(listener.address, config.group)
                    stack.callback(_remove_socket, listener.address, sock)
                    sockets.append((str(listener), sock, None))
                else:
                    sock = bind_tcp(listener)
                    stack.callback(sock.close)
                    sockets.append((str(listener), sock, ssl_context))
        except DockyardError as e:
            log.error("%s", e.message)
            return 1
        try:
            asyncio.run(serve(config, sockets))
        except DockyardError as e:
            log.error("%s", e.message)
            return 1
        except OSError as e:
            log.error("cannot start: %s", e)
            return 1
    return 0


def _remove_socket(path: str, sock: socket.socket) -> None:
    sock.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    sys.exit(main())

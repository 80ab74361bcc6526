"""Command line: ``python -m semnexus_simulator [--host H] [--port P] [--config FILE]``.

Contract: loads the configuration (defaults: providers ``openai``,
``anthropic`` and ``llama``), binds the port (0 picks a free one), and once
uvicorn accepts connections prints exactly one line to stdout::

    semnexus-simulator ready on http://127.0.0.1:8900 providers: openai=openai ...

then serves until SIGINT/SIGTERM. Exit status 0 on a clean stop, 2 when the
configuration cannot be loaded (the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn

from semnexus_simulator.app import create_app
from semnexus_simulator.config import SimulatorConfig, load_config
from semnexus_simulator.errors import ConfigError

_BACKLOG = 4096


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="semnexus-simulator",
        description="Simulated LLM providers (OpenAI, Anthropic, OpenAI-compatible) over HTTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port to bind; 0 picks one (8900)")
    parser.add_argument("--config", type=Path, help="YAML or JSON configuration file")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level (warning)",
    )
    return parser.parse_args(argv)


async def serve(config: SimulatorConfig, host: str, port: int, log_level: str) -> None:
    """Serve ``config`` on ``host:port`` and print the ready line once accepting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=_BACKLOG)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_level=log_level,
            access_log=False,
            lifespan="off",
            backlog=_BACKLOG,
            timeout_keep_alive=30,
            # Hung calls end when their client leaves; this bounds shutdown if one has not.
            timeout_graceful_shutdown=3,
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn.Server exposes readiness only as a flag, so poll it.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if server.started:
        bound_host, bound_port = sock.getsockname()[:2]
        shown_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        providers = " ".join(f"{name}={p.wire.value}" for name, p in config.providers.items())
        print(
            f"semnexus-simulator ready on http://{shown_host}:{bound_port} providers: {providers}",
            flush=True,
        )
    await serving


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until interrupted; the ``semnexus-simulator`` script."""
    args = _arguments(argv)
    try:
        config = load_config(args.config) if args.config is not None else SimulatorConfig()
    except ConfigError as exc:
        print(f"semnexus-simulator: {exc}", file=sys.stderr)
        return 2
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal;
    # turning SIGTERM into KeyboardInterrupt makes both a clean exit 0.
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port, args.log_level))
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

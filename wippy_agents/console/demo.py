"""``wippy demo``: the mission end to end, offline, narrated, self-checking.

Each stage runs real parts (the actor kernel, the store, the registry, Lua,
the durable task engine, the scripted model) in a temporary app directory,
narrates what happens, and verifies what it claims. The command exits 0 only
when every stage verified.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from rich.console import Console

__all__ = ["run", "Demo", "STAGES", "until"]


@dataclass
class Demo:
    """What a stage gets: a console to narrate on and a scratch directory."""

    console: Console
    workdir: Path
    fast: bool = False
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def check(self, claim: str, ok: bool) -> bool:
        """Record and print one verified claim."""
        self.checks.append((claim, bool(ok)))
        mark = "[green]✔[/]" if ok else "[red]✘[/]"
        self.console.print(f"  {mark} {claim}")
        return bool(ok)

    async def pause(self, seconds: float = 0.6) -> None:
        if not self.fast:
            await asyncio.sleep(seconds)


Stage = Callable[[Demo], Awaitable[None]]


async def until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` (sync, or async) until it is true or ``timeout`` passes; the demo's only wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(interval)
    return False


def _stages() -> list[tuple[str, Stage]]:
    from .demo_kernel import kernel_stage

    stages: list[tuple[str, Stage]] = [("A supervision tree survives injected crashes", kernel_stage)]
    try:  # later layers add their stages as they land
        from .demo_mission import mission_stages
    except ImportError:
        return stages
    return stages + mission_stages()


STAGES = _stages


def run(args: argparse.Namespace) -> int:
    """Entry point of ``wippy demo``."""
    if not getattr(args, "debug", False):
        # the narration tells the story; crash tracebacks from the log would drown it
        logging.getLogger("wippy_agents").setLevel(logging.CRITICAL)
    return asyncio.run(_main(fast=bool(getattr(args, "fast", False))))


async def _main(*, fast: bool) -> int:
    console = Console(highlight=False)
    console.rule("[bold]wippy-agents demo[/] — offline, scripted model, temporary app")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wippy-demo-") as tmp:
        demo = Demo(console=console, workdir=Path(tmp), fast=fast)
        for number, (title, stage) in enumerate(_stages(), start=1):
            console.print()
            console.print(f"[bold cyan]{number}. {title}[/]")
            before = len(demo.checks)
            try:
                await asyncio.wait_for(stage(demo), timeout=120)
            except Exception as exc:  # noqa: BLE001 - a failed stage is reported, not raised
                demo.check(f"stage finished without error ({type(exc).__name__}: {exc})", False)
            if len(demo.checks) == before:
                demo.check("stage verified at least one claim", False)
            await demo.pause(1.5)  # time to read the stage before the next one scrolls it away
    failed = [claim for claim, ok in demo.checks if not ok]
    console.print()
    elapsed = time.perf_counter() - started
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(demo.checks)} checks failed[/] in {elapsed:.1f}s")
        return 1
    console.print(f"[bold green]all {len(demo.checks)} checks passed[/] in {elapsed:.1f}s")
    return 0

"""The real ``wippy`` command with the tests' side-effect tools loaded.

``python tests/integration/wf_node.py run --app DIR --node A`` is ``wippy run``
plus two builtin Python tools (``python_tool``, the package's own plug-in
point for Python code) that write each call to an effects table — the
outside world the crash tests count. Lua cannot write files, and a tool
that went through the registry or the node's own store would be undone or
redone with it; a separate database is what a real side effect looks like.

* ``test.fx:once``  (``idempotent: false``) and ``test.fx:again``
  (``idempotent: true``) insert ``(task, step, tool, node, pid, at)`` and
  return ``step``.
* ``WF_EFFECTS``: a SQLite file path or a ``postgresql://...?schema=S`` URL.
* ``WF_KILL_AT=N``: right after the effect that makes the table hold ``N``
  rows, the process SIGKILLs itself — the point between a step's side effect
  and its journal write, which no outside timer can hit reliably.
* ``WF_NODE``: the node name written with each effect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wippy_agents.agents import python_tool  # noqa: E402
from wippy_agents.cli import main  # noqa: E402

SCHEMA = {"type": "object", "properties": {"task": {"type": "string"}, "step": {"type": "integer"}},
          "required": ["task", "step"]}
PAUSE = float(os.environ.get("WF_PAUSE", "0.01"))


def pg_target(url: str) -> tuple[str, str]:
    """(dsn without the schema parameter, schema) of a ``...?schema=S`` URL."""
    parts = urlsplit(url)
    schema = parse_qs(parts.query).get("schema", ["public"])[0]
    return urlunsplit(parts._replace(query="")), schema


async def record(tool: str, args: dict) -> int:
    target = os.environ["WF_EFFECTS"]
    row = (args["task"], args["step"], tool, os.environ.get("WF_NODE", "?"), os.getpid(), time.time())
    await asyncio.sleep(PAUSE)  # a kill often lands before the effect ...
    if target.startswith("postgresql://"):
        import asyncpg

        dsn, schema = pg_target(target)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'INSERT INTO "{schema}".effects (task, step, tool, node, pid, at) '
                               "VALUES ($1, $2, $3, $4, $5, $6)", *row)
            count = await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".effects')
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(target, timeout=10)
        try:
            with db:
                db.execute("INSERT INTO effects (task, step, tool, node, pid, at) VALUES (?, ?, ?, ?, ?, ?)", row)
            count = db.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
        finally:
            db.close()
    if os.environ.get("WF_KILL_AT") == str(count):
        os.kill(os.getpid(), signal.SIGKILL)  # after the effect, before the journal knows
    await asyncio.sleep(PAUSE)  # ... or between the effect and its journal write
    return args["step"]


@python_tool("test.fx:once", description="Record a side effect (not idempotent)", input_schema=SCHEMA)
async def once(args: dict, ctx: object) -> int:
    return await record("once", args)


@python_tool("test.fx:again", description="Record a side effect (idempotent)", input_schema=SCHEMA, idempotent=True)
async def again(args: dict, ctx: object) -> int:
    return await record("again", args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

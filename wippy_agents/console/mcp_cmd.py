"""``wippy mcp serve``: open the app and serve its tools over stdio (stdout is the MCP wire: nothing else prints)."""

from __future__ import annotations

import argparse
import asyncio

from ..app import App

__all__ = ["serve"]


def serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from ..mcp.serve import serve_stdio

    app = await App.open(getattr(args, "app", None), store=getattr(args, "store", None),
                         node=getattr(args, "node", None))
    try:
        await serve_stdio(app, policy=args.policy, tools=args.tools, agents=tuple(args.agent or ()))
    finally:
        await app.close()
    return 0

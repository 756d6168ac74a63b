"""CLI handler: ``wippy registry push`` publishes the app's files to the store (SPEC §3).

On a shared PostgreSQL store only a deploy publishes local files: ``wippy
run`` when a node starts, or this command. Every other command runs on the
store's current version and warns when its local files differ. The new
version records this node and host.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["push"]


def push(args: argparse.Namespace) -> int:
    """Write the files' entries as one new version where they differ from the store's; exit 0."""

    async def run() -> tuple[int, int, int]:
        from ..app import App
        from ..store import open_store
        from ..registry import AppSettings

        settings = AppSettings.load(args.app, store=args.store, node=args.node)
        store = await open_store(settings.store)
        try:
            before = await store.registry_head()
        finally:
            await store.close()
        app = await App.open(settings=settings, recover=False, claim_interval=0, publish=True)
        try:
            return before, app.registry.version, len(app.registry.file_entries)
        finally:
            await app.close()

    before, after, files = asyncio.run(run())
    if after > before:
        print(f"published registry version {after} from {files} file entr{'y' if files == 1 else 'ies'}; "
              "running nodes follow it", file=sys.stderr)
    else:
        print(f"the store's version {after} already holds these files; nothing published", file=sys.stderr)
    print(after)
    return 0

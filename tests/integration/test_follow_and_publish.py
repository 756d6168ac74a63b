"""Running nodes follow the store; only a deploy publishes local files (SPEC §3, §2; issue 12)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import pytest
import yaml

from wippy_agents.app import App
from wippy_agents.registry import AppSettings

TOOL = "return {handler = function(a) return %r end}"


def one_file_app(path, answer: str, *, store: str | None = None):
    docs = [{"namespace": "app.tools", "entries": [
        {"name": "answer", "kind": "function.lua", "source": TOOL % answer}]}]
    if store:
        docs.insert(0, {"wippy": {"store": store}})
    path.write_text("\n---\n".join(yaml.safe_dump(d) for d in docs))
    return path


@pytest.mark.postgres
async def test_a_version_made_elsewhere_is_live_on_a_following_node_within_the_spec_bound(tmp_path, store_url):
    bound = 0.2 if store_url.startswith("postgres") else 1.0
    app_a = one_file_app(tmp_path / "a.yaml", "v0", store=store_url)
    node = await App.open(app_a, follow=True, recover=False, claim_interval=0, publish=True)
    other = await App.open(app_a, recover=False, claim_interval=0, publish=True)
    seen: dict[int, float] = {}
    arrived = asyncio.Event()

    def changed(version, ids):
        seen[version] = time.monotonic()
        arrived.set()

    node.registry.subscribe(changed)
    delays = []
    try:
        for i in range(5):
            arrived.clear()
            cs = other.registry.changeset(author="cli:test", reason=f"edit {i}")
            cs.update("app.tools:answer", {"source": TOOL % f"v{i + 1}"})
            sent = time.monotonic()
            version = await other.registry.apply(cs)
            await asyncio.wait_for(arrived.wait(), 5)
            delays.append(seen[version] - sent)
            assert await node.call("app.tools:answer") == f"v{i + 1}"
        record = (await node.registry.history(limit=1))[0]
    finally:
        await other.close()
        await node.close()
    p50 = statistics.median(delays)
    print(f"follow latency on {store_url.split(':')[0]}: p50 {p50 * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms")
    assert p50 <= bound, delays
    assert (record.node, record.host) == (other.settings.node, record.host) and record.host


async def test_on_a_shared_store_only_a_deploy_publishes_local_files(tmp_path, pg_url, caplog):
    deployed = one_file_app(tmp_path / "deploy.yaml", "deployed", store=pg_url)
    (tmp_path / "other").mkdir()
    checkout = one_file_app(tmp_path / "other" / "deploy.yaml", "stale checkout", store=pg_url)
    node = await App.open(deployed, recover=False, claim_interval=0, publish=True)  # as `wippy run` does
    head = node.registry.version
    await node.close()
    with caplog.at_level(logging.WARNING, logger="wippy_agents.registry"):
        other = await App.open(checkout, recover=False, claim_interval=0, publish=None)  # as `wippy call` does
        try:
            assert other.registry.version == head  # nothing published
            assert await other.call("app.tools:answer") == "deployed"  # runs on the store's version
        finally:
            await other.close()
    assert any("local files differ from the store's registry version" in r.getMessage() for r in caplog.records)
    pushed = await App.open(checkout, recover=False, claim_interval=0, publish=True)  # `wippy registry push`
    try:
        assert pushed.registry.version == head + 1
        assert await pushed.call("app.tools:answer") == "stale checkout"
    finally:
        await pushed.close()


def test_two_single_file_apps_in_one_folder_never_share_a_store(tmp_path):
    one = AppSettings.load(one_file_app(tmp_path / "one.yaml", "1"))
    two = AppSettings.load(one_file_app(tmp_path / "two.yaml", "2"))
    assert one.store == f"sqlite:///{tmp_path / '.wippy' / 'one.db'}"
    assert two.store == f"sqlite:///{tmp_path / '.wippy' / 'two.db'}"
    assert not one.node_stable and one.node == two.node  # one process: one default name
    assert AppSettings.load(tmp_path / "one.yaml", node="w1").node_stable

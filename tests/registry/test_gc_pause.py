"""A load holds the cyclic collector while it builds, and gives it back as it found it."""

from __future__ import annotations

import gc
import threading

import pytest

from wippy_agents.registry import Registry
from wippy_agents.registry.startup import gc_paused


@pytest.fixture(autouse=True)
def _collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_pause_nests_and_restores():
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_pause_restores_after_an_error():
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_last():
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert inside.wait(5)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the worker's pause is still on
    release.set()
    worker.join(5)
    assert gc.isenabled()


async def test_a_load_leaves_the_collector_on_even_when_it_fails(tmp_path):
    from wippy_agents.errors import LoadError
    from wippy_agents.registry import AppSettings

    (tmp_path / "wippy.yaml").write_text("sources: [src]\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.yaml").write_text("namespace: app\nentries:\n  - {name: a, kind: registry.entry}\n")
    reg = Registry(None)
    await reg.load(AppSettings.load(tmp_path))
    assert gc.isenabled() and reg.get("app:a") is not None
    (tmp_path / "src" / "b.yaml").write_text("namespace: app\nentries: [\n")
    with pytest.raises(LoadError):
        await Registry(None).load(AppSettings.load(tmp_path))
    assert gc.isenabled()

"""Registered names — oracle: erlang:register/2, unregister/1, whereis/1, and `!` to a name."""

from __future__ import annotations

import pytest

from wippy_agents.errors import NameTaken, ProcessDead, UnknownName, UsageError

from .helpers import echo, idle


async def test_register_makes_a_name_resolve_to_the_pid(node):
    pid = node.spawn(echo)
    node.register("svc", pid)
    assert node.whereis("svc") == pid
    assert await node.call("svc", "hi", 1) == 1


async def test_registering_a_taken_name_raises_name_taken(node):
    node.spawn(idle, name="svc")
    with pytest.raises(NameTaken, match="'svc' is already registered"):
        node.spawn(idle, name="svc")
    other = node.spawn(idle)
    with pytest.raises(NameTaken):
        node.register("svc", other)
    assert len(node.processes()) == 2  # the refused spawn started nothing


async def test_a_process_has_at_most_one_name(node):
    pid = node.spawn(idle, name="a")
    with pytest.raises(NameTaken, match="already registered as 'a'"):
        node.register("b", pid)


async def test_registering_a_dead_pid_raises_process_dead(node, exits):
    pid = node.spawn(echo)
    node.exit(pid, "kill")
    await exits.of(pid)
    with pytest.raises(ProcessDead):
        node.register("svc", pid)


async def test_unregister_frees_the_name(node):
    pid = node.spawn(idle, name="svc")
    node.unregister("svc")
    assert node.whereis("svc") is None
    assert node.process(pid).name is None
    with pytest.raises(UnknownName):
        node.unregister("svc")


@pytest.mark.parametrize("bad", ["", "<x.1>", "#Ref", 5])
async def test_names_that_look_like_pids_or_are_not_strings_are_refused(node, bad):
    with pytest.raises(UsageError):
        node.spawn(idle, name=bad)


async def test_send_to_an_unregistered_name_raises_unknown_name(node):
    with pytest.raises(UnknownName, match="no process is registered as 'ghost'"):
        node.send("ghost", "hi", 1)


async def test_send_to_a_dead_pid_is_silently_dropped(node, exits):
    pid = node.spawn(echo)
    node.exit(pid, "kill")
    await exits.of(pid)
    node.send(pid, "hi", 1)  # no error, as in Erlang


async def test_whereis_of_dead_process_name_is_none(node, exits):
    pid = node.spawn(echo, name="svc")
    node.send(pid, "crash")
    await exits.of(pid)
    assert node.whereis("svc") is None

"""Opening stores: URLs, migrations, pragmas, and clear errors when the database fails."""

from __future__ import annotations


import asyncio

import pytest

import wippy_agents.store as store_pkg
from wippy_agents.errors import ConfigError, StoreError
from wippy_agents.store import Store, VersionRecord, open_store
from wippy_agents.store.migrations import MIGRATIONS


def test_the_package_exports_exactly_the_store_api():
    assert sorted(store_pkg.__all__) == sorted(
        ["open_store", "Store", "VersionRecord", "AuditRecord", "TaskRecord", "StepRecord", "NodeRecord", "TaskStatus",
             "StepStatus"])


async def test_a_store_satisfies_the_protocol_and_survives_reopening(store_url):
    s = await open_store(store_url)
    assert isinstance(s, Store)
    await s.registry_append(VersionRecord(version=1, created_at=1.0, author="a", reason="r", changes=[]))
    await s.close()
    await s.close()  # idempotent
    again = await open_store(store_url)  # migrations already applied: nothing to do
    try:
        assert await again.registry_head() == 1
    finally:
        await again.close()


async def test_nodes_opening_a_fresh_store_together_migrate_it_once(store_url, raw_sql):
    stores = await asyncio.gather(*(open_store(store_url) for _ in range(3)))
    for s in stores:
        await s.close()
    rows = await raw_sql("SELECT number FROM schema_migrations ORDER BY number")
    assert [r[0] for r in rows] == [m.number for m in MIGRATIONS]


async def test_migrations_are_recorded_in_order(store, raw_sql):
    rows = await raw_sql("SELECT number, name FROM schema_migrations ORDER BY number")
    assert [tuple(r) for r in rows] == [(m.number, m.name) for m in MIGRATIONS]
    assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_store_written_by_a_newer_version_is_refused(store_url, raw_sql):
    await (await open_store(store_url)).close()
    await raw_sql("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 0)")
    with pytest.raises(StoreError, match="migration 999 .* newer than this wippy-agents knows"):
        await open_store(store_url)


async def test_an_edited_migration_history_is_refused(store_url, raw_sql):
    await (await open_store(store_url)).close()
    await raw_sql("UPDATE schema_migrations SET name = 'renamed' WHERE number = 1")
    with pytest.raises(StoreError, match="migration 1 is 'renamed' in the database"):
        await open_store(store_url)


async def test_a_closed_store_says_so(store):
    await store.close()
    with pytest.raises(StoreError, match="registry_head failed: the store is closed"):
        await store.registry_head()


@pytest.mark.parametrize("url", ["mysql://x/y", "state.db", "sqlite://", "sqlite:///"])
async def test_an_unknown_store_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="store url"):
        await open_store(url)


# -- SQLite specifics ----------------------------------------------------------
async def test_sqlite_creates_the_folder_and_uses_wal_normal_and_a_busy_timeout(tmp_path):
    path = tmp_path / "deep" / "er" / "state.db"
    s = await open_store(f"sqlite:///{path}")
    try:
        pragmas = await s._call("pragmas", lambda db: [db.execute(f"PRAGMA {p}").fetchone()[0]
                                                       for p in ("journal_mode", "synchronous", "busy_timeout")])
        assert pragmas == ["wal", 1, 5000]  # synchronous 1 = NORMAL
    finally:
        await s.close()
    assert path.exists()


async def test_sqlite_relative_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = await open_store("sqlite:///.wippy/state.db")
    await s.close()
    assert (tmp_path / ".wippy" / "state.db").exists()


async def test_sqlite_in_memory_store_works():
    s = await open_store("sqlite:///:memory:")
    try:
        await s.registry_append(VersionRecord(version=1, created_at=1.0, author="a", reason="r", changes=[]))
        assert await s.registry_head() == 1
    finally:
        await s.close()


async def test_sqlite_that_cannot_be_opened_is_a_store_error_naming_the_url(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    url = f"sqlite:///{tmp_path}/file/state.db"
    with pytest.raises(StoreError, match=f"cannot open store {url}: cannot create its folder"):
        await open_store(url)


async def test_a_folder_in_place_of_the_database_file_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match=f"cannot open store sqlite:///{tmp_path}: unable to open database file"):
        await open_store(f"sqlite:///{tmp_path}")


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.db.*(not a database|file is not)"):
        await open_store(f"sqlite:///{tmp_path}/junk.db")


async def test_sqlite_failures_during_use_are_store_errors(sqlite_url):
    s = await open_store(sqlite_url)
    try:
        def break_it(db):
            db.execute("DROP TABLE audit")
        await s._call("sabotage", break_it)
        with pytest.raises(StoreError, match="audit_list failed: no such table: audit"):
            await s.audit_list()
    finally:
        await s.close()


# -- PostgreSQL specifics --------------------------------------------------------
async def test_unreachable_postgres_is_a_store_error_without_the_password():
    url = "postgresql://alice:s3cret@127.0.0.1:1/test?schema=x"
    with pytest.raises(StoreError) as caught:
        await open_store(url)
    message = str(caught.value)
    assert "postgresql://alice:***@127.0.0.1:1/test" in message and "cannot connect" in message
    assert "s3cret" not in message and "\n" not in message


async def test_a_postgres_schema_name_must_be_an_identifier():
    with pytest.raises(ConfigError, match="schema"):
        await open_store("postgresql://postgres@127.0.0.1:5432/test?schema=bad;drop")


async def test_postgres_missing_database_is_a_store_error(pg_url):
    url = pg_url.replace("/test?", "/no_such_db_wippy?")
    with pytest.raises(StoreError, match="no_such_db_wippy"):
        await open_store(url)


async def test_postgres_query_failures_are_store_errors_naming_the_operation(pg_url, raw_sql_pg):
    s = await open_store(pg_url)
    try:
        await raw_sql_pg("DROP TABLE audit")
        with pytest.raises(StoreError, match=r"audit_list failed: .*audit.* does not exist") as caught:
            await s.audit_list()
        assert "\n" not in str(caught.value)
    finally:
        await s.close()


async def test_postgres_change_feed_survives_losing_its_connection(pg_url, raw_sql_pg):
    reader, writer = await open_store(pg_url), await open_store(pg_url)
    name = f"wippy-agents {reader.schema} listen"
    listeners = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
    try:
        feed = reader.registry_changes(poll_interval=0.02, since=0)
        waiting = asyncio.ensure_future(anext(feed))
        [old] = await eventually(lambda: raw_sql_pg(listeners, name))
        await raw_sql_pg("SELECT pg_terminate_backend($1)", old["pid"])
        await eventually(lambda: _other_pid(raw_sql_pg(listeners, name), old["pid"]))
        await writer.registry_append(VersionRecord(version=1, created_at=1.0, author="b", reason="r", changes=[]))
        assert await asyncio.wait_for(waiting, 5) == 1
        await feed.aclose()
    finally:
        await reader.close()
        await writer.close()


async def _other_pid(rows, old):
    return [r for r in await rows if r["pid"] != old]


async def eventually(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
    return value


async def test_a_journal_written_before_migration_5_reads_with_no_node_and_attempt_1(store_url, raw_sql, monkeypatch):
    import wippy_agents.store.migrations as migrations

    before = [m for m in MIGRATIONS if m.number < 5]  # the schema as it was before migration 5
    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(before))
    old = await open_store(store_url)
    await old.close()
    await raw_sql("INSERT INTO tasks VALUES ('t1', 'workflow', 'app:f', 'null', 'succeeded', NULL, NULL, 1, 'null',"
                  " NULL, NULL, 1.0, 2.0)")
    await raw_sql("INSERT INTO journal VALUES ('t1', 1, 's1', 'ok', '7', NULL, 1.0, 1.5, 0, 0.0)")
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    new = await open_store(store_url)
    try:
        [step] = await new.journal_load("t1")
        assert (step.result, step.node, step.attempt, step.finished_at) == (7, None, 1, 1.5)
    finally:
        await new.close()

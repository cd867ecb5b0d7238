"""The metadata database: migrations per component, transactions."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from dockyard.errors import FailedPrecondition, Internal
from dockyard.oci import Digest
from dockyard.store import metadata
from dockyard.store.db import Database
from dockyard.store.metadata import ImageRecord, LayerRecord, MetadataStore


def test_fresh_database_reaches_latest(tmp_path):
    with Database(tmp_path / "m.db") as db:
        MetadataStore(db)
        assert db.version("store") == len(metadata.MIGRATIONS)
        (user_version,) = db.query_one("PRAGMA user_version")
        assert user_version == 1
        (mode,) = db.query_one("PRAGMA journal_mode")
        assert mode == "wal"


def test_old_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "m.db"
    d = Digest.from_bytes(b"layer")
    # A database as version 1 of the code left it, with data in it.
    with Database(path) as db:
        assert db.migrate("store", metadata.MIGRATIONS[:1]) == 1
        with db.transaction() as conn:
            conn.execute("INSERT INTO layers (chain_id, diff_id, parent, size, created) VALUES (?, ?, NULL, 5, 1)",
                         (str(d), str(d)))
            conn.execute("INSERT INTO images (id, created, size) VALUES (?, 1, 5)", (str(d),))
            conn.execute("INSERT INTO image_layers VALUES (?, 0, ?)", (str(d), str(d)))
        with pytest.raises(sqlite3.OperationalError):
            db.query("SELECT * FROM leases")
    # Opening it with today's code migrates and keeps the rows.
    with Database(path) as db:
        store = MetadataStore(db)
        assert db.version("store") == len(metadata.MIGRATIONS)
        assert store.get_layer(d).compressed_size is None
        assert store.get_image(d).layers == (d,)
        db.query("SELECT * FROM leases")  # the table migration 2 added


def test_components_are_independent(tmp_path):
    with Database(tmp_path / "m.db") as db:
        MetadataStore(db)
        db.migrate("widgets", ["CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)"])
        assert db.versions() == {"store": len(metadata.MIGRATIONS), "widgets": 1}

        def rename(conn):
            conn.execute("ALTER TABLE widgets ADD COLUMN colour TEXT")
            conn.execute("UPDATE widgets SET colour = 'blue'")

        db.execute("INSERT INTO widgets (name) VALUES ('a')")
        assert db.migrate("widgets", ["CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)", rename]) == 2
        assert [tuple(r) for r in db.query("SELECT name, colour FROM widgets")] == [("a", "blue")]
        # migrating again is a no-op
        assert db.migrate("widgets", ["CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)", rename]) == 2


def test_failed_migration_rolls_back_to_previous_version(tmp_path):
    with Database(tmp_path / "m.db") as db:
        steps = ["CREATE TABLE t (a INTEGER)",
                 "ALTER TABLE t ADD COLUMN b INTEGER; CREATE TABLE t (oops)"]
        with pytest.raises(Internal, match="migrating 'things' from version 1 to 2"):
            db.migrate("things", steps)
        assert db.version("things") == 1
        # the half of step 2 that ran was rolled back with it
        assert [r[1] for r in db.query("PRAGMA table_info(t)")] == ["a"]


def test_newer_database_is_refused(tmp_path):
    with Database(tmp_path / "m.db") as db:
        db.migrate("things", ["CREATE TABLE t (a)", "CREATE TABLE u (a)"])
        with pytest.raises(FailedPrecondition, match="newer than this dockyard supports"):
            db.migrate("things", ["CREATE TABLE t (a)"])
    con = sqlite3.connect(tmp_path / "m.db")
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(FailedPrecondition, match="format 99"):
        Database(tmp_path / "m.db")


def test_transaction_rolls_back_on_error(tmp_path):
    with Database(tmp_path / "m.db") as db:
        db.migrate("t", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
        with pytest.raises(RuntimeError):
            with db.transaction() as conn:
                conn.execute("INSERT INTO kv VALUES ('a', '1')")
                raise RuntimeError("fail half-way")
        assert db.query("SELECT * FROM kv") == []
        assert not db.in_transaction


def test_nested_transaction_is_a_savepoint(tmp_path):
    with Database(tmp_path / "m.db") as db:
        db.migrate("t", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('outer', '1')")
            with pytest.raises(sqlite3.IntegrityError):
                with db.transaction() as inner:
                    inner.execute("INSERT INTO kv VALUES ('inner', '1')")
                    inner.execute("INSERT INTO kv VALUES ('outer', 'dup')")
            assert db.in_transaction
        assert [r[0] for r in db.query("SELECT k FROM kv")] == ["outer"]


def test_metadata_operation_is_atomic(tmp_path):
    with Database(tmp_path / "m.db") as db:
        store = MetadataStore(db)
        base = Digest.from_bytes(b"base")
        store.put_layer(LayerRecord(base, base, None, 1))
        missing = Digest.from_bytes(b"missing")
        image = Digest.from_bytes(b"config")
        with pytest.raises(FailedPrecondition, match="not recorded"):
            store.put_image(ImageRecord(image, (base, missing)))
        assert not store.has_image(image)
        assert db.query("SELECT * FROM image_layers") == []
        # several operations in one caller transaction roll back together
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.put_image(ImageRecord(image, (base,)))
                store.set_ref("docker.io/library/x:latest", image)
                raise RuntimeError("abort")
        assert not store.has_image(image)
        assert store.refs() == []


def test_threads_write_concurrently(tmp_path):
    with Database(tmp_path / "m.db") as db:
        db.migrate("t", ["CREATE TABLE counter (n INTEGER)", "INSERT INTO counter VALUES (0)"])
        errors = []

        def bump() -> None:
            try:
                for _ in range(50):
                    with db.transaction() as conn:
                        (n,) = conn.execute("SELECT n FROM counter").fetchone()
                        conn.execute("UPDATE counter SET n = ?", (n + 1,))
            except Exception as exc:  # asserted below
                errors.append(exc)

        threads = [threading.Thread(target=bump) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert db.query_one("SELECT n FROM counter")[0] == 300


def test_closed_database_refuses(tmp_path):
    db = Database(tmp_path / "m.db")
    db.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        db.query("SELECT 1")


def test_threads_queue_in_process_not_in_sqlite_busy_handler(tmp_path):
    """Writers of one process take turns on a lock: while one holds the
    write transaction another waits without entering SQLite (whose busy
    handler would sleep in steps of up to 100 ms), and gets its turn as
    soon as the first commits."""
    import time
    with Database(tmp_path / "m.db") as db:
        db.migrate("t", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
        inside, waited = threading.Event(), []

        def second() -> None:
            inside.wait()
            start = time.monotonic()
            with db.transaction() as conn:
                waited.append(time.monotonic() - start)
                conn.execute("INSERT INTO kv VALUES ('b', '2')")

        other = threading.Thread(target=second)
        other.start()
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('a', '1')")
            inside.set()
            time.sleep(0.15)
            # the other thread has not begun a transaction meanwhile
            assert db.query_one("SELECT count(*) FROM kv")[0] == 1
        other.join()
        assert 0.1 < waited[0] < 0.5
        assert sorted(r[0] for r in db.query("SELECT k FROM kv")) == ["a", "b"]


def test_two_handles_on_one_file_share_the_writer_turn(tmp_path):
    with Database(tmp_path / "m.db") as a, Database(tmp_path / "m.db") as b:
        a.migrate("t", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
        with a.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('a', '1')")
            # Same thread, same file: re-entrant, so b's transaction waits
            # in SQLite's busy handler instead of deadlocking on our lock.
            b_conn = b.connection()
            b_conn.execute("PRAGMA busy_timeout = 50")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                with b.transaction():
                    pass
        with b.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('b', '2')")
        assert a.query_one("SELECT count(*) FROM kv")[0] == 2


def test_connections_of_ended_threads_are_closed(tmp_path):
    import gc
    with Database(tmp_path / "m.db") as db:
        db.migrate("t", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
        conns = []

        def use(i: int) -> None:
            with db.transaction() as conn:
                conn.execute("INSERT INTO kv VALUES (?, 'x')", (str(i),))
            conns.append(db.connection())

        for i in range(20):
            t = threading.Thread(target=use, args=(i,))
            t.start()
            t.join()
        gc.collect()
        # only the main thread's (opened by Database itself) remains
        assert db.open_connections == 1
        for conn in conns:
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                conn.execute("SELECT 1")
        assert db.query_one("SELECT count(*) FROM kv")[0] == 20

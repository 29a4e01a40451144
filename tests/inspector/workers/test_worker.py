"""Async processing: workers, ordering, retries, dead runs, parking and replay."""

import contextlib
import io
import signal
import threading
import time
from collections import OrderedDict

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from inspector.dashboard import feed
from inspector.models import HandlerAttempt, HandlerRun, HandlerRunReplay, Message, RunStatus
from inspector.runtime.unit_of_work import unit_of_work
from inspector.services import RunNotReplayable, handler_run_replay, handler_run_resolve
from inspector.workers.worker import Worker
from tests.warehouse.commands import AddBook
from tests.warehouse.models import Book, Inventory, Seen, Switch
from tests.warehouse.probe import Ping

pytestmark = pytest.mark.django_db(transaction=True)


def append_pings(domain, category, count, *, streams=1, sleep=None, start=0):
    with unit_of_work(domain) as uow:
        for n in range(start, start + count):
            uow.append(Ping(n=n, sleep=sleep), stream=f"{category}-{n % streams}")


def drain(**options):
    return Worker(worker_id="test-worker", **options).drain()


def run_until_attempt(run, number, timeout=5.0):
    """Claim what is due, one batch at a time, until the run has made its attempt `number`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Worker(worker_id="test-worker").run_once()
        run.refresh_from_db()
        if run.attempts >= number:
            assert run.attempts == number
            return run
        time.sleep(0.005)
    raise AssertionError(f"attempt {number} did not happen; the run is at {run.attempts}")


def wait_for(condition, timeout=60.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


@contextlib.contextmanager
def idle_worker(**options):
    """A worker running in a thread that has found nothing to do and is waiting; it must stop
    within 15 s of `stop()` (workers here poll every 10 s at most, or stop() wakes them)."""
    worker = Worker(**options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        yield worker
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()


def assert_one_ping_handled_within(domain, seconds):
    """Append one Ping (two runs) and check both succeed in less than `seconds`."""
    started = time.monotonic()
    append_pings(domain, "probe::ping", 1)
    assert wait_for(lambda: Seen.objects.count() == 2, timeout=10, interval=0.01)
    assert time.monotonic() - started < seconds


def test_async_append_creates_pending_runs_that_a_worker_runs(async_domain):
    append_pings(async_domain, "probe::ping", 6, streams=2)
    runs = HandlerRun.objects.filter(message_type="warehouse.Ping.v1")
    assert runs.count() == 12
    assert set(runs.values_list("status", "claimed_by")) == {("pending", "")}
    assert not Seen.objects.exists()

    call_command("run_handlers", batch=True, stdout=io.StringIO())

    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    for handler in ("A", "B"):
        for stream in ("probe::ping-0", "probe::ping-1"):
            positions = list(
                Seen.objects.filter(handler=handler, stream=stream)
                .order_by("id")
                .values_list("position", flat=True)
            )
            assert positions == [0, 1, 2]


def test_async_command_returns_its_id_and_a_worker_runs_the_handler(async_domain):
    command_id = async_domain.process(
        AddBook(title="Dune", author="Frank Herbert", price_amount=9.99), asynchronous=True
    )
    command = Message.objects.get(pk=command_id)
    assert command.type == "warehouse.AddBook.v1"
    run = HandlerRun.objects.get(message=command)
    assert (run.handler, run.status) == ("warehouse.BookCommandHandler", "pending")
    assert not Book.objects.exists()

    assert drain() == 2  # the command handler, then BookAdded's handler
    book = Book.objects.get()
    assert Inventory.objects.get(book=book).in_stock == 10
    event = Message.objects.get(type="warehouse.BookAdded.v1")
    assert event.metadata["causation_id"] == str(command_id)
    assert event.correlation_id == command.correlation_id
    run.refresh_from_db()
    assert run.status == "succeeded" and run.raised_message_ids == [str(event.id)]


def test_an_attempt_on_a_run_another_worker_took_over_keeps_nothing(async_domain, add_book):
    """A run's outcome is written with what its handler wrote and raised (in one statement
    on PostgreSQL): a worker whose run another worker claimed meanwhile (its lease had
    expired) finds no run of its own to finish, and its whole attempt rolls back."""
    book = add_book()
    run = HandlerRun.objects.select_related("message").get(handler="warehouse.BookEventHandler")
    HandlerRun.objects.filter(pk=run.pk).update(status="running", claimed_by="worker-b")
    messages = Message.objects.count()

    Worker(worker_id="worker-a").execute(run)

    assert not Inventory.objects.filter(book=book).exists()
    assert Message.objects.count() == messages  # nor what the handler raised
    run.refresh_from_db()
    assert (run.status, run.claimed_by, run.attempts) == ("running", "worker-b", 0)

    Worker(worker_id="worker-b").execute(run)  # the worker that holds the claim finishes it
    run.refresh_from_db()
    assert (run.status, run.attempts, run.claimed_by) == ("succeeded", 1, "")
    assert Inventory.objects.get(book=book).in_stock == 10
    raised = Message.objects.get(id=run.raised_message_ids[0])
    assert raised.metadata["handler_run_id"] == str(run.id) and run.duration_us > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement: PostgreSQL")
def test_a_runs_outcome_and_what_it_raised_are_one_statement_on_postgresql(async_domain, add_book):
    from django.test.utils import CaptureQueriesContext

    add_book()
    run = HandlerRun.objects.select_related("message").get(handler="warehouse.BookEventHandler")
    HandlerRun.objects.filter(pk=run.pk).update(status="running", claimed_by="worker-a")
    with CaptureQueriesContext(connection) as queries:
        Worker(worker_id="worker-a").execute(run)
    writes = [q["sql"] for q in queries.captured_queries if "inspector_handlerrun" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("WITH seq AS"), writes
    run.refresh_from_db()
    assert run.status == "succeeded" and len(run.raised_message_ids) == 1


def test_retries_back_off_then_the_run_is_dead_and_replay_after_the_fix_succeeds(
    async_domain, admin_user
):
    Switch.objects.create(name="flaky", on=True)
    append_pings(async_domain, "probe::flaky", 1)
    run = HandlerRun.objects.get(handler="warehouse.Flaky")

    assert Worker(worker_id="test-worker").run_once() == 1  # one claim, one attempt
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("failed", 1)
    delay = (run.available_at - run.finished_at).total_seconds()
    assert 0.025 <= delay <= 0.05  # backoff_base 0.05 with jitter
    drained = drain()
    if timezone.now() < run.available_at:  # the drain ended before the run was due
        assert drained == 0

    run = run_until_attempt(run, 2)
    assert run.status == "failed"
    second_delay = (run.available_at - run.finished_at).total_seconds()
    assert 0.05 <= second_delay <= 0.1  # doubled, capped at 0.1

    run = run_until_attempt(run, 3)
    assert run.status == "dead"  # retries=2: three attempts in all
    attempts = list(HandlerAttempt.objects.filter(run=run).values_list("number", "error_message"))
    assert attempts == [(n, "flaky is switched on (n=0)") for n in (1, 2, 3)]
    assert "RuntimeError" in HandlerAttempt.objects.get(run=run, number=3).traceback

    Switch.objects.filter(name="flaky").update(on=False)
    handler_run_replay(run=run, user=admin_user, reason="fixed the flag")
    run.refresh_from_db()
    assert (run.status, run.claimed_by) == ("pending", "")
    assert drain() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.attempts == 4
    assert Seen.objects.filter(handler="Flaky").count() == 1
    replay = HandlerRunReplay.objects.get(run=run)
    assert (replay.user, replay.reason, replay.previous_status, replay.attempts_before) == (
        admin_user,
        "fixed the flag",
        "dead",
        3,
    )
    with pytest.raises(RunNotReplayable, match="only failed or dead runs"):
        handler_run_replay(run=run, user=admin_user, reason="again")


def test_a_dead_run_lets_the_rest_of_its_stream_go_on_by_default(async_domain):
    Switch.objects.create(name="skipping-0", on=True)
    append_pings(async_domain, "probe::skipping", 3)
    drain()
    statuses = list(
        HandlerRun.objects.filter(handler="warehouse.Skipping")
        .order_by("position")
        .values_list("status", flat=True)
    )
    assert statuses == ["dead", "succeeded", "succeeded"]


def test_a_parking_handler_holds_its_stream_until_the_dead_run_is_replayed(async_domain):
    Switch.objects.create(name="parked-0", on=True)
    append_pings(async_domain, "probe::parked", 3)
    append_pings(async_domain, "probe::parked", 1, start=3, streams=1)  # same stream, later
    drain()
    runs = HandlerRun.objects.filter(handler="warehouse.Parked").order_by("position")
    assert list(runs.values_list("status", flat=True)) == ["dead", "pending", "pending", "pending"]
    assert not Seen.objects.filter(handler="Parked").exists()

    Switch.objects.filter(name="parked-0").update(on=False)
    handler_run_replay(run=runs[0], reason="fixed")
    drain()
    assert list(runs.values_list("status", flat=True)) == ["succeeded"] * 4
    assert list(
        Seen.objects.filter(handler="Parked").order_by("id").values_list("n", flat=True)
    ) == [0, 1, 2, 3]


def test_resolve_closes_a_dead_run_and_releases_a_parked_stream(async_domain, admin_user):
    Switch.objects.create(name="parked-0", on=True)
    append_pings(async_domain, "probe::parked", 2)
    drain()
    dead = HandlerRun.objects.get(handler="warehouse.Parked", position=0)
    handler_run_resolve(run=dead, user=admin_user, reason="handled by hand")
    drain()
    statuses = dict(
        HandlerRun.objects.filter(handler="warehouse.Parked").values_list("position", "status")
    )
    assert statuses == {0: "resolved", 1: "succeeded"}
    with pytest.raises(RunNotReplayable):
        handler_run_resolve(run=dead, user=admin_user)


def test_a_run_whose_worker_died_is_claimed_again_after_its_lease(async_domain):
    append_pings(async_domain, "probe::ping", 1)
    dying = Worker(worker_id="dying", lease_seconds=0.2)
    claimed = dying.claim()
    assert len(claimed) == 2
    assert drain() == 0  # leased to the dying worker
    time.sleep(0.3)
    assert drain() == 2
    assert set(HandlerRun.objects.values_list("status", flat=True)) == {"succeeded"}
    # The dying worker wakes up and finishes late: its claim is gone, nothing is recorded twice.
    dying.execute(claimed[0])
    assert Seen.objects.count() == 2


def test_a_paused_handler_waits_and_resumes(async_domain):
    from inspector.models import HandlerState

    HandlerState.objects.create(handler="warehouse.RecorderB", paused=True)
    append_pings(async_domain, "probe::ping", 2)
    drain()
    statuses = dict(HandlerRun.objects.filter(position=1).values_list("handler", "status"))
    assert statuses == {"warehouse.RecorderA": "succeeded", "warehouse.RecorderB": "pending"}
    HandlerState.objects.filter(handler="warehouse.RecorderB").update(paused=False)
    drain()
    assert set(HandlerRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_sigterm_finishes_the_current_run_and_leaves_none_running(async_domain, spawn_worker):
    append_pings(async_domain, "probe::ping", 40, streams=40, sleep=0.05)
    worker = spawn_worker("--batch-size", "10", "--poll", "0.05")
    assert wait_for(lambda: Seen.objects.count() >= 5, 30)
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    output = worker.log.read_text()
    assert worker.returncode == 0, output
    assert "Stopped after" in output
    assert not HandlerRun.objects.filter(status=RunStatus.RUNNING).exists()
    assert not HandlerRun.objects.exclude(claimed_by="").exists()
    succeeded = HandlerRun.objects.filter(status="succeeded").count()
    assert 5 <= succeeded < 80
    assert Seen.objects.count() == succeeded


def _assert_exactly_once_in_order(events):
    runs = HandlerRun.objects.filter(message_type="warehouse.Ping.v1")
    assert runs.count() == events * 2
    assert runs.filter(status="succeeded").count() == events * 2
    for handler in ("A", "B"):
        seen = list(
            Seen.objects.filter(handler=handler).order_by("id").values_list("stream", "position")
        )
        assert len(seen) == events  # each event handled once by each handler
        assert len(set(seen)) == events
        last = {}
        for stream, position in seen:
            assert position == last.get(stream, -1) + 1, f"{handler} saw {stream} out of order"
            last[stream] = position


def _events_for_this_database():
    return 5000 if connection.vendor == "postgresql" else 1000


def test_four_worker_processes_drain_every_event_exactly_once_in_order(async_domain, spawn_worker):
    events = _events_for_this_database()
    append_pings(async_domain, "probe::ping", events, streams=50)
    workers = [spawn_worker("--poll", "0.05", "--batch-size", "20") for _ in range(4)]
    done = wait_for(
        lambda: not HandlerRun.objects.exclude(status="succeeded").exists(),
        timeout=240,
        interval=0.5,
    )
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)
    assert done, HandlerRun.objects.exclude(status="succeeded").count()
    _assert_exactly_once_in_order(events)


def test_a_worker_killed_mid_way_loses_nothing_and_succeeds_nothing_twice(
    async_domain, spawn_worker
):
    events = _events_for_this_database()
    append_pings(async_domain, "probe::ping", events, streams=50)
    victim = spawn_worker("--poll", "0.05", "--batch-size", "20", "--lease", "2")
    others = [spawn_worker("--poll", "0.05", "--batch-size", "20", "--lease", "2")]
    assert wait_for(lambda: Seen.objects.count() >= events // 4, 120)
    victim.kill()  # SIGKILL: its claimed runs stay running until their lease expires
    victim.wait(10)
    others.append(spawn_worker("--poll", "0.05", "--batch-size", "20", "--lease", "2"))
    done = wait_for(
        lambda: not HandlerRun.objects.exclude(status="succeeded").exists(),
        timeout=240,
        interval=0.5,
    )
    for worker in others:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert done, HandlerRun.objects.exclude(status="succeeded").count()
    _assert_exactly_once_in_order(events)


def test_a_long_run_keeps_its_lease_so_no_other_worker_takes_it(async_domain):
    import threading

    append_pings(async_domain, "probe::ping", 1, sleep=1.2)
    slow = Worker(worker_id="slow", lease_seconds=0.3, handlers=["warehouse.RecorderA"], max_runs=1)
    thread = threading.Thread(target=slow.run)
    thread.start()
    assert wait_for(
        lambda: HandlerRun.objects.filter(handler="warehouse.RecorderA", status="running").exists(),
        5,
        0.02,
    )
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # well past the 0.3 s lease: renewals keep it
        assert drain(handlers=["warehouse.RecorderA"]) == 0
        time.sleep(0.1)
    thread.join(10)
    run = HandlerRun.objects.get(handler="warehouse.RecorderA")
    assert (run.status, run.attempts) == ("succeeded", 1)
    assert Seen.objects.filter(handler="A").count() == 1


def test_a_stream_stuck_behind_a_retry_does_not_starve_later_streams(async_domain, monkeypatch):
    spec = async_domain.handler_named("warehouse.Flaky")
    monkeypatch.setattr(spec, "backoff_base", 60.0)  # the head's retry stays in the future,
    monkeypatch.setattr(spec, "backoff_cap", 60.0)  # however slowly this machine drains
    Switch.objects.create(name="flaky", on=True)
    append_pings(async_domain, "probe::flaky", 250)  # one stream: one head, 249 blocked
    append_pings(async_domain, "probe::ping", 1, start=250)
    drain()
    flaky = HandlerRun.objects.filter(handler="warehouse.Flaky")
    assert flaky.get(position=0).status == "failed"  # waiting for its retry
    assert flaky.filter(status="pending").count() == 249
    later = HandlerRun.objects.filter(message__stream="probe::ping-0")
    assert set(later.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL wakes through NOTIFY")
def test_a_worker_in_the_same_process_starts_at_once_not_at_its_next_poll(async_domain):
    """The embedded default: a commit that queues runs wakes this process's idle workers."""
    with idle_worker(worker_id="test-embedded", poll_interval=30.0):
        assert_one_ping_handled_within(async_domain, 5)  # not the 30 s poll


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL wakes through NOTIFY")
def test_a_sqlite_worker_notices_another_processs_commit_before_its_next_poll(
    async_domain, monkeypatch
):
    """Without LISTEN, a worker watches SQLite's data_version for other connections' commits
    instead of waiting out its poll (which would put the poll interval on every run)."""
    from inspector.runtime import store

    monkeypatch.setattr(store, "notify_workers", lambda: None)  # as from another process
    with idle_worker(worker_id="test-watch", poll_interval=30.0):  # stop() ends its wait
        assert_one_ping_handled_within(async_domain, 5)  # not the 30 s poll


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY: PostgreSQL")
def test_a_worker_listens_again_after_its_listen_connection_is_cut(async_domain):
    """A database restart or a proxy cuts the LISTEN connection; the worker must not fall
    back to its poll for good (a second on every run), so it listens again."""
    with idle_worker(worker_id="test-relisten", poll_interval=10.0):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'LISTEN inspector_runs' AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0]
        time.sleep(0.5)  # the worker notices, listens again and waits
        assert_one_ping_handled_within(async_domain, 4)  # not the 10 s poll


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings: PostgreSQL")
def test_handlers_run_with_the_planner_settings_the_claim_changed_for_itself(async_domain):
    """The claim turns bitmap scans off for its own statement; the handlers that run on the
    same connection next must plan their queries as usual."""
    append_pings(async_domain, "probe::ping", 1)
    worker = Worker(worker_id="test-planner")
    assert len(worker.claim()) == 2
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_bitmapscan")
        assert cursor.fetchone()[0] == "on"


def test_a_worker_keeps_a_healthy_connection_between_batches(async_domain):
    """CONN_MAX_AGE is 0 for requests; a worker reconnecting every batch ran at a third of
    its speed on PostgreSQL. A connection that broke is still replaced."""
    append_pings(async_domain, "probe::ping", 3, streams=3)
    worker = Worker(worker_id="test-keep", batch_size=2)
    assert worker.run_once() == 2
    first = connection.connection
    assert worker.run_once() == 2  # the other handler's runs of the first two pings
    assert connection.connection is first
    if connection.vendor == "postgresql":
        connection.connection.close()  # the server went away
        connection.errors_occurred = True
        assert worker.run_once() == 2
        assert connection.connection is not first
    assert Seen.objects.count() >= 4


def test_a_run_that_fails_in_a_group_commit_rolls_back_alone(async_domain):
    """Runs claimed together share one commit; each is its own savepoint, so a database
    error in one (which aborts the whole transaction on PostgreSQL) undoes only its writes."""
    append_pings(async_domain, "probe::skipping", 5, streams=5)
    Switch.objects.create(name="skipping-db-2", on=True)

    assert Worker(worker_id="test-group", batch_size=5, commit_window=60.0).run_once() == 5

    assert sorted(Seen.objects.filter(handler="Skipping").values_list("n", flat=True)) == [
        0,
        1,
        3,
        4,
    ]
    runs = {run.position + 10 * int(run.stream[-1]): run for run in HandlerRun.objects.all()}
    assert [runs[10 * n].status for n in range(5)] == ["succeeded"] * 2 + ["dead"] + [
        "succeeded"
    ] * 2
    assert "IntegrityError" in runs[20].error_type
    assert HandlerAttempt.objects.get(run=runs[20]).number == 1
    assert not HandlerRun.objects.exclude(claimed_by="").exists()


def test_a_slow_group_reaches_the_live_feed_with_every_outcome(async_domain):
    """The feed re-reads run changes only a short window back, so outcomes that a slow
    handler kept uncommitted in its group are dated at the commit, not when they finished."""
    append_pings(async_domain, "probe::ping", 1, streams=2)  # runs A and B, quick
    append_pings(async_domain, "probe::ping", 1, streams=2, start=1, sleep=1.2)  # A is slow
    worker = Worker(worker_id="test-slow-group", batch_size=3, commit_window=60.0)
    assert worker.run_once() == 3

    # What a dashboard that has followed the feed up to now reads next.
    items, _ = feed.run_items(since=timezone.now() - feed.RUN_WINDOW, seen=OrderedDict())
    succeeded = [item for item in items if item.statuses == {"succeeded"}]
    assert len(succeeded) == 3


def test_a_worker_that_loses_the_race_for_its_candidates_claims_the_next_ones(
    async_domain, monkeypatch
):
    """Workers choose the same oldest runs; one whose choice another worker leased first
    looks again instead of idling until the next notification."""
    append_pings(async_domain, "probe::ping", 8, streams=8)  # 16 runs, 16 stream heads
    first = Worker(worker_id="test-first", batch_size=4)
    second = Worker(worker_id="test-second", batch_size=4)
    lease_due = second._lease_due
    calls = []

    def lost_race(now, limit):
        calls.append(limit)
        if len(calls) == 1:  # `first` leased the same oldest runs a moment earlier
            first.claim()
            return [], limit  # its whole choice was gone when it came to lease
        return lease_due(now, limit)

    monkeypatch.setattr(second, "_lease_due", lost_race)
    claimed = second.claim()

    assert len(calls) == 2 and len(claimed) == 4
    owners = dict(HandlerRun.objects.filter(status="running").values_list("id", "claimed_by"))
    assert len(owners) == 8
    assert {owners[run.pk] for run in claimed} == {"test-second"}


def test_a_running_worker_goes_on_to_what_its_runs_held_back_without_waiting_to_poll(
    async_domain,
):
    """After a batch a worker waits for the next wake-up unless work is due now: a full batch,
    or a later run of a stream that one of its runs held back (no notification announces
    that one). Six events on one stream, two handlers: each run waits for the one before."""
    with idle_worker(worker_id="test-follow", poll_interval=3.0, batch_size=3) as worker:
        started = time.monotonic()  # six 3 s polls would take 18 s
        append_pings(async_domain, "probe::ping", 6, streams=1)
        assert wait_for(lambda: Seen.objects.count() == 12, timeout=30, interval=0.01)
        assert time.monotonic() - started < 9
        assert worker.more_due is False  # the last batch left nothing behind it
    for handler in ("A", "B"):
        seen = Seen.objects.filter(handler=handler).order_by("id").values_list("n", flat=True)
        assert list(seen) == list(range(6))


def test_an_error_outside_the_handlers_gives_the_groups_runs_back(async_domain, monkeypatch):
    """An error outside the handlers (a lost connection, a deadlock) ends the batch: what ran
    before it commits, and the rest go back to pending at once instead of keeping leases that
    the worker would renew forever."""
    from django.db import OperationalError

    append_pings(async_domain, "probe::ping", 5, streams=5)  # ten runs, ten stream heads
    worker = Worker(worker_id="test-broken", batch_size=5, commit_window=60.0)
    execute, calls = worker.execute, []

    def breaks_on_the_third(run):
        calls.append(run.pk)
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        execute(run)

    monkeypatch.setattr(worker, "execute", breaks_on_the_third)
    with pytest.raises(OperationalError):
        worker.run_once()

    assert not worker._in_progress
    assert Seen.objects.count() == 2  # the runs before the error committed with their group
    assert HandlerRun.objects.filter(status="succeeded").count() == 2
    assert not HandlerRun.objects.filter(status="running").exists()  # the rest: pending
    monkeypatch.undo()
    assert Worker(worker_id="test-after").drain() == 8
    _assert_each_seen_once()


def _assert_each_seen_once():
    seen = list(Seen.objects.values_list("handler", "n"))
    assert len(seen) == len(set(seen)) == 2 * len({n for _, n in seen})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_lease_renewal_skips_the_rows_the_open_group_has_written(async_domain):
    """The heartbeat must not wait for a row the worker's open group already wrote: waiting
    while holding the rows the group writes next deadlocked the two."""
    append_pings(async_domain, "probe::ping", 2, streams=2)
    worker = Worker(worker_id="test-renew", batch_size=4)
    runs = worker.claim()
    assert len(runs) == 4
    written, *others = runs
    before = dict(HandlerRun.objects.values_list("pk", "lease_expires_at"))
    renewed = threading.Event()

    def heartbeat():
        try:
            worker.renew_leases()
            renewed.set()
        finally:
            connection.close()

    with transaction.atomic():  # the open group: one run finished, not committed yet
        HandlerRun.objects.filter(pk=written.pk).update(status="succeeded")
        thread = threading.Thread(target=heartbeat)
        thread.start()
        assert renewed.wait(5), "the lease renewal waited for the open group"
    thread.join(5)
    after = dict(HandlerRun.objects.values_list("pk", "lease_expires_at"))
    assert all(after[run.pk] > before[run.pk] for run in others)

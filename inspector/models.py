"""The event store and the record of every handler run."""

from django.conf import settings
from django.db import models

from inspector.domain.identity import new_id


class MessageKind(models.TextChoices):
    EVENT = "event", "Event"
    COMMAND = "command", "Command"


class MessageQuerySet(models.QuerySet):
    def in_stream(self, stream):
        return self.filter(stream=stream).order_by("position")

    def in_category(self, category):
        return self.filter(category=category).order_by("global_position")

    def after(self, global_position):
        return self.filter(global_position__gt=global_position).order_by("global_position")


class Message(models.Model):
    """One stored event or command. Rows are written once and never changed."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    kind = models.CharField(max_length=10, choices=MessageKind.choices)
    type = models.CharField(max_length=255)
    stream = models.CharField(max_length=255)
    category = models.CharField(max_length=255)
    position = models.BigIntegerField()
    global_position = models.BigIntegerField(unique=True)
    data = models.JSONField()
    metadata = models.JSONField()
    correlation_id = models.UUIDField(db_index=True)
    causation_id = models.UUIDField(null=True, blank=True)  # trees are read by correlation
    time = models.DateTimeField()

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["global_position"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "position"], name="message_stream_position"),
        ]
        indexes = [
            models.Index(fields=["category", "global_position"], name="message_category_gpos"),
            models.Index(fields=["category", "stream", "position"], name="message_category_stream"),
            models.Index(fields=["time"], name="message_time"),
            models.Index(fields=["type", "global_position"], name="message_type_gpos"),
        ]

    def __str__(self):
        return f"{self.type} {self.stream}@{self.position}"


class StoreSequence(models.Model):
    """The global position counter where writers run concurrently (PostgreSQL): its row lock
    orders appends in commit order. SQLite's single writer reads the highest position instead."""

    name = models.CharField(max_length=50, primary_key=True)
    value = models.BigIntegerField(default=-1)

    def __str__(self):
        return f"{self.name}={self.value}"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    DEAD = "dead", "Dead"
    RESOLVED = "resolved", "Resolved"


UNFINISHED_STATUSES = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.FAILED]
UNFINISHED = models.Q(status__in=UNFINISHED_STATUSES)


class HandlerRunQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=RunStatus.PENDING)

    def succeeded(self):
        return self.filter(status=RunStatus.SUCCEEDED)

    def failed(self):
        return self.filter(status__in=[RunStatus.FAILED, RunStatus.DEAD])


class HandlerRun(models.Model):
    """One handler's processing of one message: status, timing, outcome and what it raised."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # Indexed through the (message, handler) unique constraint; a second index would only cost.
    message = models.ForeignKey(
        Message, on_delete=models.PROTECT, related_name="runs", db_index=False
    )
    handler = models.CharField(max_length=255)
    message_type = models.CharField(max_length=255)
    stream = models.CharField(max_length=255)
    position = models.BigIntegerField()
    global_position = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField()
    claimed_by = models.CharField(max_length=255, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_us = models.BigIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    raised_message_ids = models.JSONField(default=list, blank=True)
    # The key of its FailureGroup, set when an attempt fails (inspector/runtime/failures.py)
    # and cleared when one succeeds: blank for runs that are fine.
    failure_group = models.CharField(max_length=32, blank=True, default="")
    # The edited replay whose payload this run runs with instead of its stored message's
    # (edit and replay); null for runs of the message as it was stored.
    edit = models.ForeignKey(
        "HandlerRunReplay",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = HandlerRunQuerySet.as_manager()

    class Meta:
        ordering = ["global_position", "handler"]
        constraints = [
            models.UniqueConstraint(fields=["message", "handler"], name="run_message_handler"),
        ]
        indexes = [
            # Workers scan unfinished runs in global order and check each one's stream for an
            # earlier unfinished run; both indexes only hold unfinished rows, so they stay
            # small however long the history grows.
            models.Index(
                fields=["global_position"], condition=UNFINISHED, name="run_unfinished_order"
            ),
            models.Index(
                fields=["handler", "stream", "position"],
                condition=UNFINISHED,
                name="run_unfinished_stream",
            ),
            models.Index(
                fields=["handler", "stream", "position"],
                condition=models.Q(status="dead"),
                name="run_dead_stream",
            ),
            models.Index(
                fields=["handler", "status", "finished_at"], name="run_handler_status_finished"
            ),
            models.Index(fields=["status", "global_position"], name="run_status_gpos"),
            models.Index(fields=["updated_at"], name="run_updated_at"),  # the live feed
            models.Index(fields=["global_position", "handler"], name="run_order"),  # lists
            # A failure group's runs, in list order; only runs whose last attempt failed.
            models.Index(
                fields=["failure_group", "global_position", "handler"],
                condition=~models.Q(failure_group=""),
                name="run_failure_group",
            ),
            models.Index(fields=["edit"], condition=models.Q(edit__isnull=False), name="run_edit"),
        ]
        permissions = [
            ("replay_handlerrun", "Can replay and resolve handler runs"),
            ("edit_handlerrun", "Can edit a message's payload and replay a handler run with it"),
        ]

    def __str__(self):
        return f"{self.handler} ← {self.message_type} ({self.status})"


class FailureGroup(models.Model):
    """Failed runs that share one cause: a handler, an exception type, where it was raised
    and its message without particulars (inspector/runtime/failures.py).

    Dispatch writes the row with the first failure of the group (the key, what it is, a sample
    message) and never updates it, so failures of one group never wait on each other's row
    lock; the store indexer keeps the counts of its dead runs (`dead`, `streams`,
    `last_dead_at`, and FailureHour, FailureStream), and inspector/readmodel/failures.py adds
    the runs it has not folded in yet.
    """

    key = models.CharField(max_length=32, primary_key=True)
    handler = models.CharField(max_length=255)
    error_type = models.CharField(max_length=255)
    message = models.TextField(blank=True, default="")  # of the first failure, as it was
    first_seen = models.DateTimeField()
    dead = models.BigIntegerField(default=0)
    streams = models.BigIntegerField(default=0)  # streams with one of its dead runs or more
    last_dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["handler"], name="failure_group_handler")]

    def __str__(self):
        return f"{self.handler} {self.error_type} ({self.key})"


class FailureHour(models.Model):
    """Dead runs of one group whose last attempt failed in one hour (hours since the epoch);
    the indexer folds the hours older than a day into the row of hour -1."""

    failure_group = models.CharField(max_length=32)
    hour = models.BigIntegerField()
    runs = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["failure_group", "hour"], name="failure_hour_key"),
        ]

    def __str__(self):
        return f"{self.failure_group}@{self.hour}: {self.runs}"


class FailureStream(models.Model):
    """Dead runs of one group in one stream: a group's `streams` counts its rows."""

    failure_group = models.CharField(max_length=32)
    stream = models.CharField(max_length=255)
    runs = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["failure_group", "stream"], name="failure_stream_key"),
        ]

    def __str__(self):
        return f"{self.failure_group} {self.stream}: {self.runs}"


class HandlerAttempt(models.Model):
    """A failed attempt of a handler run, kept with its error after the run moves on."""

    run = models.ForeignKey(HandlerRun, on_delete=models.CASCADE, related_name="failed_attempts")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=255, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_us = models.BigIntegerField()
    error_type = models.CharField(max_length=255)
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="attempt_run_number"),
        ]

    def __str__(self):
        return f"attempt {self.number} of {self.run_id}: {self.error_type}"


class HandlerRunReplay(models.Model):
    """Who sent a failed run back to the queue (or resolved it, or made its retry due now),
    when, and why; an edited replay also keeps the payload the run runs with from then on."""

    class Action(models.TextChoices):
        REPLAY = "replay", "Replayed"
        RESOLVE = "resolve", "Resolved"
        RETRY = "retry", "Retried now"

    run = models.ForeignKey(HandlerRun, on_delete=models.CASCADE, related_name="replays")
    action = models.CharField(max_length=10, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    at = models.DateTimeField()
    reason = models.TextField(blank=True, default="")
    previous_status = models.CharField(max_length=10, choices=RunStatus.choices)
    attempts_before = models.PositiveIntegerField()
    # Edit and replay: the payload the handler runs with (the stored message is never
    # rewritten) and the message's payload as it was, so the diff shows what changed.
    edited_data = models.JSONField(null=True, blank=True)
    original_data = models.JSONField(null=True, blank=True)
    # The replay job that replayed or resolved the run; null for one done in a request.
    # Indexed with the record's id (below): a job's progress reads its records after a mark.
    job = models.ForeignKey(
        "ReplayJob",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replays",
        db_index=False,
    )

    class Meta:
        ordering = ["run", "at"]
        indexes = [models.Index(fields=["job", "id"], name="replay_record_job")]

    def __str__(self):
        return (
            f"{self.get_action_display()} {self.run_id} by {self.user} at {self.at:%Y-%m-%d %H:%M}"
        )


class HandlerState(models.Model):
    """Operator switches per handler: a paused handler's runs wait until it is resumed."""

    handler = models.CharField(max_length=255, primary_key=True)
    paused = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.handler} ({'paused' if self.paused else 'running'})"


# The store indexer's tables (inspector/indexer.py writes them; nothing on the append path does).


class IndexerPosition(models.Model):
    """How far the store indexer has read the store, and how many steps it has taken.

    Every message and run up to `position` is in the tables below; readers count and search
    what lies beyond it in the store itself. Each step moves both values compare-and-set, so
    indexers in several processes never apply the same work twice.
    """

    name = models.CharField(max_length=50, primary_key=True)
    position = models.BigIntegerField(default=-1)
    steps = models.BigIntegerField(default=0)
    # Dead runs handed back to the open runs (`reopen_runs`): it fails the compare-and-set of a
    # step that read them before, like another indexer's step, but is not one, so the indexer
    # reads again at once instead of leaving the work to an indexer that is not there.
    reopens = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}@{self.position}"


class MessageTally(models.Model):
    """Messages of one type in one category up to the indexer's position."""

    category = models.CharField(max_length=255)
    type = models.CharField(max_length=255)
    messages = models.BigIntegerField(default=0)
    last_global_position = models.BigIntegerField(default=-1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["category", "type"], name="message_tally_key"),
        ]

    def __str__(self):
        return f"{self.category} {self.type}: {self.messages}"


class PayloadKey(models.Model):
    """A top-level payload key seen on messages of one type in one category.

    A payload search probes one digest per (category, type) that has the key.
    """

    category = models.CharField(max_length=255)
    type = models.CharField(max_length=255)
    key = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "category", "type"], name="payload_key_unique"),
        ]

    def __str__(self):
        return f"{self.type}.{self.key}"


class PayloadValue(models.Model):
    """One top-level scalar payload field of one message, as a 64-bit digest of its category,
    type, key and value: the (digest, global position) key is the index a payload search walks
    newest first, and stays small whatever the values look like."""

    pk = models.CompositePrimaryKey("digest", "global_position")
    digest = models.BigIntegerField()
    global_position = models.BigIntegerField()

    def __str__(self):
        return f"{self.digest}@{self.global_position}"


class RunTally(models.Model):
    """Runs of one handler that ended for good (succeeded or resolved) up to the indexer's
    position, with the duration histogram of the succeeded ones (counts per bucket bound in
    microseconds, "inf" above the last bound)."""

    handler = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    runs = models.BigIntegerField(default=0)
    timed = models.BigIntegerField(default=0)  # runs with a duration
    duration_us_sum = models.BigIntegerField(default=0)
    buckets = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["handler", "status"], name="run_tally_key"),
        ]

    def __str__(self):
        return f"{self.handler} {self.status}: {self.runs}"


class OpenRun(models.Model):
    """A run the indexer passed while it could still change status; it is counted live from
    the run itself until it has succeeded or been resolved, then joins its handler's tally."""

    run = models.OneToOneField(
        HandlerRun, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )

    def __str__(self):
        return str(self.run_id)


class HandlerLastAttempt(models.Model):
    """The latest failed attempt of one handler's runs the indexer has seen; the handlers
    page adds the few attempts recorded since instead of grouping every attempt by handler."""

    handler = models.CharField(max_length=255, primary_key=True)
    attempt_id = models.BigIntegerField()

    def __str__(self):
        return f"{self.handler}: attempt {self.attempt_id}"


# Replay jobs (inspector/services/jobs.py makes them, inspector/workers/replay_jobs.py carries
# them out).


class ReplayJob(models.Model):
    """A replay or resolve of many runs that workers carry out in the background, a chunk at a
    time at `rate` runs per second, in (global position, handler) order.

    Its runs are frozen when it is made: one INSERT ... SELECT copies the keys of the runs
    that were failed or dead then into ReplayJobRun. A snapshot rather than criteria and an
    upper bound because an admin selection is any filter of the changelist (or a list of
    ids) and cannot be written down as criteria a worker could run again later; copying
    100,000 keys takes a fraction of a second on PostgreSQL (bench/replay_jobs.py), and the
    copy is also the count the confirmation promised. `covers` says what it is for people.

    The cursor (`after_position`, `after_handler`) is the key of the last run it took, moved
    with `applied` and `skipped` in the transaction that replays that chunk, so a job resumes
    exactly where it stopped. One worker at a time carries it out: the one whose `claimed_by`
    holds an unexpired lease; after a crash the lease runs out and another takes it over.
    """

    class Action(models.TextChoices):
        REPLAY = "replay", "Replay"
        RESOLVE = "resolve", "Resolve"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        FINISHED = "finished", "Finished"

    action = models.CharField(max_length=10, choices=Action.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    covers = models.TextField()  # what it covers, for people: "failure group …", "admin …"
    reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rate = models.PositiveIntegerField()  # runs per second
    total = models.BigIntegerField(default=0)  # runs frozen when it was made
    applied = models.BigIntegerField(default=0)  # queued again (replay) or resolved so far
    skipped = models.BigIntegerField(default=0)  # no longer failed or dead when reached
    after_position = models.BigIntegerField(default=-1)
    after_handler = models.CharField(max_length=255, blank=True, default="")
    next_step_at = models.DateTimeField()  # when the rate lets it take its next chunk
    claimed_by = models.CharField(max_length=255, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    # The settled mark (see readmodel/replay_jobs.py): the id of the last of the job's replay
    # records that workers have seen end, with what those ended as; a progress read counts
    # only the records after it. `settled_at`: when the job had ended and all its runs had.
    settled_through = models.BigIntegerField(default=0)
    settled_done = models.BigIntegerField(default=0)
    settled_failed = models.BigIntegerField(default=0)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_step_at"],
                condition=models.Q(status__in=["waiting", "running"]),
                name="replay_job_due",
            ),
            # The jobs whose settled mark workers still move: few, among all jobs ever made.
            models.Index(
                fields=["id"], condition=models.Q(settled_at=None), name="replay_job_unsettled"
            ),
        ]

    def __str__(self):
        return f"{self.get_action_display()} job {self.pk} ({self.status})"


class ReplayJobRun(models.Model):
    """One run a replay job covers, by the key it is taken in: the primary key (job, global
    position, handler) is the index a job's cursor walks, and the only one.

    No foreign key constraints: PostgreSQL checks Django's (deferred) ones row by row at the
    commit, which made a job over 100,000 runs take seconds to make; the rows are written once
    from runs that exist, runs are never deleted, and a job's rows go with it (the ORM's
    cascade)."""

    pk = models.CompositePrimaryKey("job", "global_position", "handler")
    job = models.ForeignKey(
        ReplayJob, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    global_position = models.BigIntegerField()
    handler = models.CharField(max_length=255)
    run = models.ForeignKey(
        HandlerRun,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    def __str__(self):
        return f"job {self.job_id}: {self.run_id}"

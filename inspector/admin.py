"""The operator's admin: the event store, read-only, and handler runs with replay and resolve."""

import json
import uuid
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator

from inspector import conf
from inspector.dashboard.formatting import ONE_DECIMAL, format_ms
from inspector.dashboard.fragments import operator_note
from inspector.models import (
    FailureGroup,
    HandlerAttempt,
    HandlerRun,
    HandlerRunReplay,
    Message,
    ReplayJob,
    RunStatus,
)
from inspector.readmodel.replay_jobs import replay_job_progress
from inspector.runtime.domain import current_domain
from inspector.runtime.names import short_handler, short_type
from inspector.services import (
    BACKGROUND_ABOVE,
    REPLAYABLE,
    RETRYABLE,
    JobNotChangeable,
    handler_runs_replay,
    handler_runs_resolve,
    handler_runs_retry_now,
    payload_diff,
    replay_job_cancel,
    replay_job_create,
    replay_job_pause,
    replay_job_resume,
)

STATUS_COLORS = {
    RunStatus.PENDING: "#2f3f9e",
    RunStatus.RUNNING: "#2f3f9e",
    RunStatus.SUCCEEDED: "#1e6b3a",
    RunStatus.FAILED: "#a4161a",
    RunStatus.DEAD: "#a4161a",
    RunStatus.RESOLVED: "#5a6272",
}


def message_page_url(message_id):
    """The inspector's page of one message."""
    return reverse("inspector:message", args=[message_id])


def _is_uuid(text):
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _changelist(model, **params):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _change(obj):
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def _pretty(value):
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="inspector-json" style="white-space: pre-wrap">{}</pre>', text)


def _traceback(text):
    if not text:
        return "—"
    return format_html(
        '<pre class="inspector-traceback" style="white-space: pre-wrap">{}</pre>', text
    )


def _status(status, label):
    color = STATUS_COLORS.get(status, "inherit")
    return format_html('<strong style="color: {}">{}</strong>', color, label)


def counted(count):
    """`runs` and `handler_runs` for a message: "1 run", "3 handler runs"."""
    plural = "" if count == 1 else "s"
    return {"runs": f"{count} run{plural}", "handler_runs": f"{count} handler run{plural}"}


class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows, so no changelist page counts a whole million-row table."""

    cap = 10_000
    capped = False  # True when there are more rows than `count` says (the templates say so)

    @cached_property
    def count(self):
        counted = self.object_list.order_by()[: self.cap + 1].count()
        self.capped = counted > self.cap
        return min(counted, self.cap)


class MessagePaginator(CappedCountPaginator):
    @cached_property
    def count(self):
        if not self.object_list.query.where:
            # Global positions are handed out from 0 without gaps, so the last one is a count
            # read from the unique index instead of a scan.
            last = Message.objects.aggregate(last=Max("global_position"))["last"]
            return 0 if last is None else last + 1
        return super().count


# The event store --------------------------------------------------------------------------


class MessageTypeFilter(admin.SimpleListFilter):
    """Types from the domain's registry, so the filter costs no DISTINCT over the store."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        domain = current_domain.get()
        types = sorted({cls._type for cls in [*domain.events, *domain.commands]})
        return [(name, name) for name in types]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class CategoryFilter(admin.SimpleListFilter):
    title = "category"
    parameter_name = "category"

    def lookups(self, request, model_admin):
        domain = current_domain.get()
        categories = []
        for aggregate in domain.aggregates:
            category = domain.stream_category(aggregate)
            # Commands go to `<category>:command-<id>` streams (see Domain.process).
            categories += [category, f"{category}:command"]
        return [(category, category) for category in sorted(categories)]

    def queryset(self, request, queryset):
        return queryset.filter(category=self.value()) if self.value() else queryset


class ReadOnlyMixin:
    """Rows written by the runtime alone: the admin shows them and changes nothing."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RunOfMessageInline(ReadOnlyMixin, admin.TabularInline):
    model = HandlerRun
    fk_name = "message"
    fields = ("run_link", "status_label", "attempts", "duration", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "handler run"
    verbose_name_plural = "handler runs of this message"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("inspector.view_message")

    @admin.display(description="handler")
    def run_link(self, run):
        return format_html('<a href="{}">{}</a>', _change(run), run.handler)

    @admin.display(description="status")
    def status_label(self, run):
        return _status(run.status, run.get_status_display())

    @admin.display(description="duration")
    def duration(self, run):
        return format_ms(us=run.duration_us, rounding=ONE_DECIMAL)

    @admin.display(description="error")
    def error(self, run):
        return (
            Truncator(f"{run.error_type}: {run.error_message}").chars(120) if run.error_type else ""
        )


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "global_position",
        "type",
        "kind",
        "stream_link",
        "position",
        "time",
        "inspector_link",
    )
    list_display_links = ("global_position", "type")
    list_filter = ("kind", MessageTypeFilter, CategoryFilter)
    # Searching is by exact id (see get_search_results); this only turns the search box on.
    search_fields = ("=id",)
    search_help_text = "A message id or correlation id (a UUID), or a whole stream name."
    ordering = ("-global_position",)
    sortable_by = ("global_position",)  # the only order the indexes give cheaply
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # per-filter counts would scan the store
    paginator = MessagePaginator
    list_per_page = 50
    actions = None
    inlines = [RunOfMessageInline]
    fields = (
        "id",
        "kind",
        "type",
        "stream_link",
        "category",
        "position",
        "global_position",
        "time",
        "correlation_link",
        "causation_link",
        "inspector_link",
        "data_pretty",
        "metadata_pretty",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            value = uuid.UUID(term)
        except ValueError:
            return queryset.filter(stream=term), False
        return queryset.filter(Q(id=value) | Q(correlation_id=value)), False

    @admin.display(description="stream")
    def stream_link(self, message):
        return format_html(
            '<a href="{}" title="All messages of this stream">{}</a>',
            _changelist(Message, stream=message.stream),
            message.stream,
        )

    @admin.display(description="correlation id")
    def correlation_link(self, message):
        return format_html(
            '<a href="{}" title="Everything this correlation caused">{}</a>',
            _changelist(Message, correlation_id=message.correlation_id),
            message.correlation_id,
        )

    @admin.display(description="caused by")
    def causation_link(self, message):
        if message.causation_id is None:
            return "— (a root message)"
        cause = Message.objects.filter(pk=message.causation_id).only("id", "type").first()
        if cause is None:
            return str(message.causation_id)
        return format_html('<a href="{}">{} {}</a>', _change(cause), cause.type, cause.id)

    @admin.display(description="inspector")
    def inspector_link(self, message):
        return format_html('<a href="{}">inspect</a>', message_page_url(message.pk))

    @admin.display(description="data")
    def data_pretty(self, message):
        return _pretty(message.data)

    @admin.display(description="metadata")
    def metadata_pretty(self, message):
        return _pretty(message.metadata)


# Handler runs -----------------------------------------------------------------------------


class HandlerFilter(admin.SimpleListFilter):
    """Handlers from the domain's registry, so the filter costs no DISTINCT over the runs."""

    title = "handler"
    parameter_name = "handler"

    def lookups(self, request, model_admin):
        names = sorted(spec.name for spec in current_domain.get().handlers())
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(handler=self.value()) if self.value() else queryset


class FailureGroupFilter(admin.SimpleListFilter):
    """The newest failure groups to choose from; any group's key in the query string (the
    failure group page links it) selects its runs, for the replay and resolve actions."""

    title = "failure group"
    parameter_name = "failure_group"
    shown = 20  # groups offered as choices

    def lookups(self, request, model_admin):
        groups = FailureGroup.objects.order_by("-first_seen").only(
            "key", "handler", "error_type", "message"
        )[: self.shown]
        return [
            (
                group.key,
                f"{short_handler(group.error_type)} in {short_handler(group.handler)}: "
                + Truncator(group.message).chars(60),
            )
            for group in groups
        ]

    def queryset(self, request, queryset):
        return queryset.filter(failure_group=self.value()) if self.value() else queryset


class LineageInlineMixin(ReadOnlyMixin):
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("inspector.view_handlerrun")


class HandlerAttemptInline(LineageInlineMixin, admin.StackedInline):
    model = HandlerAttempt
    fields = (
        ("number", "worker"),
        ("started_at", "finished_at", "duration"),
        "error_type",
        "error_message",
        "traceback_pre",
    )
    readonly_fields = (
        "number",
        "worker",
        "started_at",
        "finished_at",
        "duration",
        "error_type",
        "error_message",
        "traceback_pre",
    )
    verbose_name = "failed attempt"
    verbose_name_plural = "failed attempts, oldest first"

    @admin.display(description="duration")
    def duration(self, attempt):
        return format_ms(us=attempt.duration_us, rounding=ONE_DECIMAL)

    @admin.display(description="traceback")
    def traceback_pre(self, attempt):
        return _traceback(attempt.traceback)


class HandlerRunReplayInline(LineageInlineMixin, admin.TabularInline):
    model = HandlerRunReplay
    fields = (
        "action",
        "user",
        "at",
        "reason",
        "previous_status",
        "attempts_before",
        "job",
        "edited_payload",
    )
    readonly_fields = fields
    verbose_name = "replay or resolve"
    verbose_name_plural = "lineage: who replayed or resolved this run, when and why"

    def get_fields(self, request, obj=None):
        """An edit's diff shows payload values: only to those who may see messages."""
        fields = super().get_fields(request, obj)
        if request.user.has_perm("inspector.view_message"):
            return fields
        return [name for name in fields if name != "edited_payload"]

    @admin.display(description="edited payload")
    def edited_payload(self, replay):
        if replay.edited_data is None:
            return "—"
        changes = payload_diff(replay.original_data, replay.edited_data)
        context = {"changes": changes, "caption": "Fields the edit changed"}
        return render_to_string("inspector/edit-diff.html", context)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept with each run's history, e.g. what was fixed.",
    )


@dataclass(frozen=True)
class RunOperation:
    action: str  # the admin action's name
    service: object
    title: str
    verb: str  # "replayed"
    button: str
    done: str  # what happened, with {count}


OPERATIONS = {
    "replay": RunOperation(
        action="replay_selected",
        service=handler_runs_replay,
        title="Replay handler runs",
        verb="replayed",
        button="Yes, replay {runs}",
        done="Queued {handler_runs} to run again",
    ),
    "resolve": RunOperation(
        action="resolve_selected",
        service=handler_runs_resolve,
        title="Mark handler runs resolved",
        verb="marked resolved",
        button="Yes, mark {runs} resolved",
        done="Marked {handler_runs} resolved",
    ),
}


@admin.register(HandlerRun)
class HandlerRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "handler",
        "message_type_name",
        "stream",
        "status_label",
        "attempts",
        "duration",
        "last_error",
        "updated_at",
    )
    list_filter = (
        "status",
        HandlerFilter,
        FailureGroupFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("error_message",)  # see get_search_results
    search_help_text = "A message id or run id (a UUID), or words from the error."
    ordering = ("-global_position", "handler")
    sortable_by = ("handler", "attempts", "updated_at")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 50
    actions = ["replay_selected", "resolve_selected", "retry_selected_now"]
    inlines = [HandlerAttemptInline, HandlerRunReplayInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "handler",
                    "message_link",
                    "message_type",
                    "stream",
                    ("position", "global_position"),
                    "status_label",
                    "attempts",
                    "last_operator_action",
                )
            },
        ),
        (
            "Timing",
            {
                "fields": (
                    ("created_at", "available_at"),
                    ("started_at", "finished_at", "duration"),
                    ("claimed_by", "lease_expires_at"),
                    "updated_at",
                )
            },
        ),
        (
            "Outcome of the last attempt",
            {
                "fields": (
                    "error_type",
                    "error_message",
                    "failure_group_link",
                    "traceback_pre",
                    "raised_links",
                    "dry_run_button",
                    "payload_edit",
                    "edit_replay_link",
                )
            },
        ),
    )
    readonly_fields = (
        "handler",
        "message_link",
        "message_type",
        "stream",
        "position",
        "global_position",
        "status_label",
        "attempts",
        "last_operator_action",
        "created_at",
        "available_at",
        "started_at",
        "finished_at",
        "duration",
        "claimed_by",
        "lease_expires_at",
        "updated_at",
        "error_type",
        "error_message",
        "failure_group_link",
        "traceback_pre",
        "raised_links",
        "dry_run_button",
        "payload_edit",
        "edit_replay_link",
    )

    def get_fieldsets(self, request, obj=None):
        """Without the replay permission, no dry run button; without the edit permission, no
        link to edit and replay (their pages would refuse them)."""
        hidden = set()
        if not self.has_replay_permission(request):
            hidden.add("dry_run_button")
        if not request.user.has_perm("inspector.edit_handlerrun"):
            hidden.add("edit_replay_link")
        if not hidden:
            return self.fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in self.fieldsets
        ]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            value = uuid.UUID(term)
        except ValueError:
            return queryset.filter(
                Q(error_message__icontains=term) | Q(error_type__icontains=term)
            ), False
        return queryset.filter(Q(message_id=value) | Q(id=value)), False

    # Columns and fields

    @admin.display(description="message type", ordering="message_type")
    def message_type_name(self, run):
        return short_type(run.message_type, whole=True)

    @admin.display(description="status", ordering="status")
    def status_label(self, run):
        return _status(run.status, run.get_status_display())

    @admin.display(description="duration", ordering="duration_us")
    def duration(self, run):
        return format_ms(us=run.duration_us, rounding=ONE_DECIMAL)

    @admin.display(description="last error")
    def last_error(self, run):
        if not run.error_type:
            return ""
        return Truncator(f"{short_handler(run.error_type)}: {run.error_message}").chars(90)

    @admin.display(description="message")
    def message_link(self, run):
        return format_html(
            '<a href="{}">{} {}</a> (<a href="{}">inspect</a>)',
            reverse("admin:inspector_message_change", args=[run.message_id]),
            run.message_type,
            run.message_id,
            message_page_url(run.message_id),
        )

    @admin.display(description="traceback")
    def traceback_pre(self, run):
        return _traceback(run.traceback)

    @admin.display(description="last operator action")
    def last_operator_action(self, run):
        """Who last replayed, resolved or retried it, and why; a failed run waiting out its
        backoff gets a "Retry now" button (it posts the change form to the inspector's view,
        which comes back here)."""
        replay = run.replays.select_related("user").order_by("at", "pk").last()
        note = operator_note(replay) if replay else "—"
        if run.status not in RETRYABLE:
            return note
        return format_html(
            '{}<p><button type="submit" class="button" formaction="{}" name="next" value="{}">'
            "Retry now</button> (next attempt due {})</p>",
            note,
            reverse("inspector:run-retry-now", args=[run.pk]),
            _change(run),
            run.available_at,
        )

    @admin.display(description="payload")
    def payload_edit(self, run):
        """Whether the run runs with its message as stored or with an edited payload."""
        if run.edit_id is None:
            return "the message as stored"
        edit = run.edit
        return format_html(
            "edited by {} at {}{}. The run runs with the edited payload (its diff is in the "
            "lineage below); the stored message is unchanged.",
            edit.user or "a script",
            edit.at.strftime("%Y-%m-%d %H:%M:%S"),
            format_html(" (“{}”)", edit.reason) if edit.reason else "",
        )

    @admin.display(description="edit and replay")
    def edit_replay_link(self, run):
        if run.status not in REPLAYABLE:
            return "— (only failed or dead runs can be edited and replayed)"
        return format_html(
            '<a class="button" href="{}">Edit and replay</a> with a corrected payload',
            reverse("inspector:run-edit", args=[run.pk]),
        )

    @admin.display(description="dry run")
    def dry_run_button(self, run):
        """A failed or dead run's "Dry run": it posts the change form to the inspector's dry
        run page, which shows what a replay would do now and keeps none of it."""
        if run.status not in REPLAYABLE:
            return "— (only failed or dead runs can be dry run)"
        return format_html(
            '<button type="submit" class="button" formaction="{}">Dry run</button> what a '
            "replay would do now: run in a transaction that is rolled back",
            reverse("inspector:run-dry-run", args=[run.pk]),
        )

    @admin.display(description="failure group")
    def failure_group_link(self, run):
        if not run.failure_group:
            return "—"
        return format_html(
            '<a href="{}"><code>{}</code></a> (<a href="{}">its runs here</a>)',
            reverse("inspector:failure-group", args=[run.failure_group]),
            run.failure_group,
            _changelist(HandlerRun, failure_group=run.failure_group),
        )

    @admin.display(description="raised")
    def raised_links(self, run):
        if not run.raised_message_ids:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:inspector_message_change", args=[pk]), pk)
                for pk in run.raised_message_ids
            ),
        )

    # Replay and resolve

    def response_action(self, request, queryset):
        # A selected id that is not a UUID (a tampered form) selects nothing, rather than
        # failing the query with a 500.
        post = request.POST.copy()
        post.setlist(
            ACTION_CHECKBOX_NAME,
            [pk for pk in post.getlist(ACTION_CHECKBOX_NAME) if _is_uuid(pk)],
        )
        request.POST = post
        return super().response_action(request, queryset)

    def has_replay_permission(self, request):
        return request.user.has_perm("inspector.replay_handlerrun")

    @admin.action(description="Replay selected runs", permissions=["replay"])
    def replay_selected(self, request, queryset):
        return self._operate(request, queryset, OPERATIONS["replay"])

    @admin.action(description="Mark selected runs resolved", permissions=["replay"])
    def resolve_selected(self, request, queryset):
        return self._operate(request, queryset, OPERATIONS["resolve"])

    @admin.action(description="Retry selected runs now", permissions=["replay"])
    def retry_selected_now(self, request, queryset):
        """No confirmation: it changes no run's outcome, only when a failed run's next
        attempt is due."""
        selected = queryset.count()
        count = handler_runs_retry_now(runs=queryset, user=request.user)
        message = f"Made {counted(count)['handler_runs']} due now."
        if selected > count:
            message += (
                f" {selected - count} of the {selected} selected runs were not failed and "
                "waiting for their next attempt, and were left as they were."
            )
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)

    def _operate(self, request, queryset, operation):
        """Ask first, saying how many of the selection it applies to; then call the service,
        or, for more than BACKGROUND_ABOVE runs, make a replay job that does it in the
        background (and show its page)."""
        selected = queryset.count()
        background = selected > BACKGROUND_ABOVE
        if request.POST.get("confirm") == "yes":
            form = ReasonForm(request.POST)
            reason = form.cleaned_data["reason"] if form.is_valid() else ""
            if background:
                return self._make_job(request, queryset, operation, selected, reason)
            count = operation.service(runs=queryset, user=request.user, reason=reason)
            message = operation.done.format(**counted(count)) + "."
            if selected > count:
                left = selected - count
                message += (
                    f" {left} of the {selected} selected runs "
                    + (
                        "was not failed or dead and was"
                        if left == 1
                        else "were not failed or dead and were"
                    )
                    + " left as they were."
                )
            self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)
            return None
        applicable = queryset.filter(status__in=REPLAYABLE)
        by_status = {
            row["status"]: row["n"]
            for row in applicable.order_by().values("status").annotate(n=Count("pk"))
        }
        count = sum(by_status.values())
        if not count:
            self.message_user(
                request,
                f"None of the {selected} selected runs is failed or dead, so none can be "
                f"{operation.verb}.",
                messages.WARNING,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": operation.title,
            "opts": self.model._meta,
            "operation": operation,
            "count": count,
            "selected": selected,
            "skipped": selected - count,
            "by_status": [
                (RunStatus(status).label.lower(), n) for status, n in sorted(by_status.items())
            ],
            "form": ReasonForm(),
            "action": operation.action,
            "select_across": request.POST.get("select_across") in ("1", "True", "true"),
            "selected_ids": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "button": operation.button.format(**counted(count)),
            "background": background,
            "rate": conf.setting("replay_rate"),
        }
        return TemplateResponse(
            request, "admin/inspector/handlerrun/action-confirmation.html", context
        )

    def _make_job(self, request, queryset, operation, selected, reason):
        filters = request.GET.urlencode()
        job = replay_job_create(
            action=operation.action.removesuffix("_selected"),
            runs=queryset,
            covers=f"{selected} handler runs selected in the admin"
            + (f" ({filters})" if filters else ""),
            user=request.user,
            reason=reason,
        )
        self.message_user(
            request,
            f"Made replay job {job.pk}: {counted(job.total)['handler_runs']} to be "
            f"{operation.verb} in the background, {job.rate} a second.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("inspector:replay-job", args=[job.pk]))


# Replay jobs ------------------------------------------------------------------------------


@admin.register(ReplayJob)
class ReplayJobAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Replay jobs with their progress; pause, resume and cancel them (the replay permission)."""

    list_display = (
        "id",
        "action",
        "covers_short",
        "status",
        "progress",
        "created_by",
        "created_at",
    )
    list_display_links = ("id", "covers_short")
    list_filter = ("status", "action")
    ordering = ("-created_at", "-id")
    list_per_page = 50
    actions = ["pause_jobs", "resume_jobs", "cancel_jobs"]
    fields = (
        ("action", "status"),
        "covers",
        "reason",
        ("rate", "total"),
        "progress",
        ("created_by", "created_at"),
        ("started_at", "finished_at"),
        ("claimed_by", "lease_expires_at"),
        "job_page",
    )
    readonly_fields = tuple(
        name for row in fields for name in (row if isinstance(row, tuple) else (row,))
    )

    @admin.display(description="covers")
    def covers_short(self, job):
        return Truncator(job.covers).chars(80)

    @admin.display(description="progress")
    def progress(self, job):
        progress = replay_job_progress(job)
        text = f"{progress.percent}% · done {progress.done}"
        if job.action == ReplayJob.Action.REPLAY:
            text += f", failed again {progress.failed_again}"
        return f"{text}, left {progress.left}, skipped {progress.skipped} of {progress.total}"

    @admin.display(description="inspector")
    def job_page(self, job):
        return format_html(
            '<a href="{}">its page, with live progress</a>',
            reverse("inspector:replay-job", args=[job.pk]),
        )

    def has_replay_permission(self, request):
        return request.user.has_perm("inspector.replay_handlerrun")

    @admin.action(description="Pause selected jobs", permissions=["replay"])
    def pause_jobs(self, request, queryset):
        self._change_jobs(request, queryset, replay_job_pause, "paused")

    @admin.action(description="Resume selected jobs", permissions=["replay"])
    def resume_jobs(self, request, queryset):
        self._change_jobs(request, queryset, replay_job_resume, "resumed")

    @admin.action(description="Cancel selected jobs", permissions=["replay"])
    def cancel_jobs(self, request, queryset):
        self._change_jobs(request, queryset, replay_job_cancel, "cancelled")

    def _change_jobs(self, request, queryset, service, done):
        changed, refused = [], []
        for job in queryset:
            try:
                service(job=job, user=request.user)
            except JobNotChangeable as error:
                refused.append(str(error))
            else:
                changed.append(job.pk)
        if changed:
            plural = "" if len(changed) == 1 else "s"
            ids = ", ".join(str(pk) for pk in changed)
            self.message_user(request, f"Replay job{plural} {ids} {done}.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.WARNING)

"""Operations endpoints: Prometheus metrics read from the database at scrape time, and health."""

import importlib
import importlib.util
import logging

from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from inspector import conf
from inspector.dashboard import selectors
from inspector.models import RunStatus

logger = logging.getLogger(__name__)


def connected_clients():
    """Websocket clients of this process, from the live feed when it offers a count."""
    if importlib.util.find_spec("inspector.dashboard.feed") is None:
        return 0
    counter = getattr(
        importlib.import_module("inspector.dashboard.feed"), "connected_clients", None
    )
    return int(counter()) if callable(counter) else 0


class InspectorCollector:
    """Reads the store and the handler runs on every scrape; keeps no state between scrapes."""

    def collect(self):
        snapshot = selectors.metrics_snapshot()

        messages = CounterMetricFamily(
            "inspector_messages_appended",
            "Messages appended to the event store, by type and kind.",
            labels=["type", "kind"],
        )
        for type_name, kind, count in snapshot.messages_by_type:
            messages.add_metric([type_name, kind], count)
        yield messages

        position = GaugeMetricFamily(
            "inspector_store_global_position", "The last global position in the event store."
        )
        position.add_metric([], snapshot.last_global_position)
        yield position

        runs = GaugeMetricFamily(
            "inspector_handler_runs",
            "Handler runs by handler and current status.",
            labels=["handler", "status"],
        )
        pending = GaugeMetricFamily(
            "inspector_handler_pending_runs",
            "Runs waiting for a handler: pending or running.",
            labels=["handler"],
        )
        oldest = GaugeMetricFamily(
            "inspector_handler_oldest_unfinished_age_seconds",
            "Seconds since the oldest unfinished (pending, running or failed) run was created.",
            labels=["handler"],
        )
        paused = GaugeMetricFamily(
            "inspector_handler_paused", "1 while a handler is paused.", labels=["handler"]
        )
        names = sorted(set(snapshot.runs) | snapshot.paused)
        for handler in names:
            by_status = snapshot.runs.get(handler, {})
            for status in RunStatus.values:
                runs.add_metric([handler, status], by_status.get(status, 0))
            pending.add_metric(
                [handler],
                by_status.get(RunStatus.PENDING, 0) + by_status.get(RunStatus.RUNNING, 0),
            )
            oldest.add_metric([handler], snapshot.oldest_unfinished.get(handler, 0.0))
            paused.add_metric([handler], 1 if handler in snapshot.paused else 0)
        yield runs
        yield _failures(snapshot.failures)
        yield pending
        yield oldest
        yield paused

        durations = HistogramMetricFamily(
            "inspector_handler_run_duration_seconds",
            "How long succeeded handler runs took.",
            labels=["handler"],
        )
        for handler, cumulative, count, total in snapshot.durations:
            buckets = [
                (_le(bound), value)
                for bound, value in zip(selectors.DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", count))
            durations.add_metric([handler], buckets, sum_value=total)
        yield durations

        clients = GaugeMetricFamily(
            "inspector_websocket_clients", "Websocket clients connected to this process."
        )
        clients.add_metric([], connected_clients())
        yield clients


def _failures(rows):
    """Failed and dead runs now by handler and exception type, from the failure groups."""
    family = GaugeMetricFamily(
        "inspector_handler_failures",
        "Runs failed or dead now, by handler, exception type and status (failure groups).",
        labels=["handler", "exception", "status"],
    )
    for handler, exception, status, runs in rows or ():
        family.add_metric([handler, exception, status], runs)
    return family


def _le(bound):
    return repr(float(bound))


def _metrics_allowed(request):
    """Staff in a session, or a scraper with the configured bearer token."""
    user = request.user
    if user.is_active and user.is_staff:
        return True
    token = conf.setting("metrics_token")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return constant_time_compare(value.strip(), str(token))


@never_cache
@require_safe
def metrics(request):
    """Prometheus text format; a fresh registry per scrape, so nothing leaks between them."""
    if not _metrics_allowed(request):
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="inspector metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InspectorCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_safe
def healthz(request):
    """200 when the database answers, 503 when it does not; no login, for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("Health check failed: the database did not answer", exc_info=True)
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")

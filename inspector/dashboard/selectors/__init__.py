"""Read queries behind the inspector's streams, handlers, map, search and metrics pages.

One module per page: `live`, `streams`, `handlers` (the handlers page and the workflow map),
`search` and `metrics`; `paging` holds the keyset page they share. Every list is
keyset-paginated (by stream name, position or global position), never by OFFSET, and every
page reads a fixed number of queries however much history there is.

Callers use the package: `from inspector.dashboard import selectors; selectors.message_search(...)`.
"""

from inspector.dashboard.selectors.handlers import (
    RECENT_RUNS,
    SPARK_MINUTES,
    WRITES_SAMPLE,
    HandlerStats,
    LastError,
    handler_known,
    handler_run_counts,
    handler_stats_list,
    handler_written_categories,
    last_errors,
    paused_handlers,
    percentile,
    recent_runs,
    throughput,
)
from inspector.dashboard.selectors.live import FeedChoices, feed_choices, recent_messages
from inspector.dashboard.selectors.metrics import (
    DURATION_BUCKETS,
    MetricsSnapshot,
    metrics_snapshot,
)
from inspector.dashboard.selectors.paging import KeysetPage
from inspector.dashboard.selectors.search import (
    SEARCH_ROUND_CANDIDATES,
    TIME_SKEW,
    MessageFilters,
    message_search,
    message_types,
    types_named,
)
from inspector.dashboard.selectors.streams import (
    HISTORY_PREFIX_LIMIT,
    HistoryEntry,
    aggregate_for_category,
    aggregate_history,
    category_list,
    stream_list,
    stream_message_list,
)

PAGE_SIZE = 50  # rows per page of every list; read on each call (paging.page_limit)

__all__ = [
    "DURATION_BUCKETS",
    "FeedChoices",
    "HISTORY_PREFIX_LIMIT",
    "PAGE_SIZE",
    "RECENT_RUNS",
    "SEARCH_ROUND_CANDIDATES",
    "SPARK_MINUTES",
    "TIME_SKEW",
    "WRITES_SAMPLE",
    "HandlerStats",
    "HistoryEntry",
    "KeysetPage",
    "LastError",
    "MessageFilters",
    "MetricsSnapshot",
    "aggregate_for_category",
    "aggregate_history",
    "category_list",
    "feed_choices",
    "handler_known",
    "handler_run_counts",
    "handler_stats_list",
    "handler_written_categories",
    "last_errors",
    "message_search",
    "message_types",
    "metrics_snapshot",
    "paused_handlers",
    "percentile",
    "recent_messages",
    "recent_runs",
    "stream_list",
    "stream_message_list",
    "throughput",
    "types_named",
]

"""Writes an operator makes on handler runs and handlers, one module per concern:
`runs` (replay, resolve, pause and resume). Callers import the names from here."""

from inspector.services.runs import (
    CHUNK,
    REPLAYABLE,
    RETRYABLE,
    RunNotReplayable,
    handler_pause,
    handler_resume,
    handler_run_replay,
    handler_run_resolve,
    handler_run_retry_now,
    handler_runs_replay,
    handler_runs_resolve,
    handler_runs_retry_now,
)

__all__ = [
    "CHUNK",
    "REPLAYABLE",
    "RETRYABLE",
    "RunNotReplayable",
    "handler_pause",
    "handler_resume",
    "handler_run_replay",
    "handler_run_resolve",
    "handler_run_retry_now",
    "handler_runs_replay",
    "handler_runs_resolve",
    "handler_runs_retry_now",
]

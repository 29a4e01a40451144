"""Writes an operator makes on handler runs and handlers, one module per concern:
`runs` (replay, resolve, retry now, pause and resume), `jobs` (replay jobs in the
background), `edits` (edit and replay). Callers import the names from here."""

from inspector.services.edits import (
    UNCHANGED,
    PayloadChange,
    edited_payload,
    handler_run_edit_replay,
    payload_diff,
    run_payload,
)
from inspector.services.jobs import (
    BACKGROUND_ABOVE,
    JobNotChangeable,
    NothingToReplay,
    replay_job_cancel,
    replay_job_create,
    replay_job_pause,
    replay_job_resume,
)
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
    handler_runs_apply,
    handler_runs_replay,
    handler_runs_resolve,
    handler_runs_retry_now,
)

__all__ = [
    "BACKGROUND_ABOVE",
    "CHUNK",
    "JobNotChangeable",
    "NothingToReplay",
    "PayloadChange",
    "REPLAYABLE",
    "RETRYABLE",
    "RunNotReplayable",
    "UNCHANGED",
    "edited_payload",
    "handler_pause",
    "handler_resume",
    "handler_run_edit_replay",
    "handler_run_replay",
    "handler_run_resolve",
    "handler_run_retry_now",
    "handler_runs_apply",
    "handler_runs_replay",
    "handler_runs_resolve",
    "handler_runs_retry_now",
    "payload_diff",
    "replay_job_cancel",
    "replay_job_create",
    "replay_job_pause",
    "replay_job_resume",
    "run_payload",
]

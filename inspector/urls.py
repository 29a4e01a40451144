"""The staff pages, for `path("inspector/", include("inspector.urls"))` (namespace `inspector`)."""

from django.urls import path

from inspector.dashboard.views import (
    dry_run,
    edits,
    failures,
    handlers,
    jobs,
    live,
    messages,
    search,
    streams,
    workflow,
)

app_name = "inspector"

urlpatterns = [
    path("", live.feed_page, name="live"),
    path("messages/<uuid:message_id>/", messages.message_detail, name="message"),
    path("messages/<uuid:message_id>/diagram/", messages.message_diagram, name="message-diagram"),
    path("messages/<uuid:message_id>/diagram.svg", messages.message_svg, name="message-svg"),
    path(
        "messages/<uuid:message_id>/diagram.mmd", messages.message_mermaid, name="message-mermaid"
    ),
    path("runs/<uuid:run_id>/replay/", messages.run_replay, name="run-replay"),
    path("runs/<uuid:run_id>/dry-run/", dry_run.run_dry_run, name="run-dry-run"),
    path("runs/<uuid:run_id>/edit/", edits.run_edit_replay, name="run-edit"),
    path("runs/<uuid:run_id>/retry-now/", messages.run_retry_now, name="run-retry-now"),
    path("flows/<uuid:correlation_id>/", messages.flow_detail, name="flow"),
    path("flows/<uuid:correlation_id>/diagram.svg", messages.flow_svg, name="flow-svg"),
    path("flows/<uuid:correlation_id>/diagram.mmd", messages.flow_mermaid, name="flow-mermaid"),
    path("streams/", streams.stream_categories, name="streams"),
    path("streams/category/<str:category>/", streams.category_detail, name="category"),
    path("streams/stream/<path:stream>/", streams.stream_detail, name="stream"),
    path("handlers/", handlers.handler_list, name="handlers"),
    path("handlers/<str:name>/pause/", handlers.handler_pause, name="handler-pause"),
    path("handlers/<str:name>/resume/", handlers.handler_resume, name="handler-resume"),
    path("failures/", failures.failure_list, name="failures"),
    path("failures/<str:key>/", failures.failure_group_detail, name="failure-group"),
    path(  # before the group's other actions, whose <action> would take "retry-now"
        "failures/<str:key>/retry-now/",
        failures.failure_group_retry_now,
        name="failure-group-retry-now",
    ),
    # Before the group actions: "dry-run" is not one of them.
    path("failures/<str:key>/dry-run/", dry_run.group_dry_run, name="failure-group-dry-run"),
    path(
        "failures/<str:key>/<str:action>/",
        failures.failure_group_action,
        name="failure-group-action",
    ),
    path("jobs/", jobs.replay_job_list, name="replay-jobs"),
    path("jobs/<int:job_id>/", jobs.replay_job_detail, name="replay-job"),
    path("jobs/<int:job_id>/<str:action>/", jobs.replay_job_action, name="replay-job-action"),
    path("map/", workflow.workflow_map, name="map"),
    path("map.svg", workflow.workflow_map_svg, name="map-svg"),
    path("search/", search.message_search, name="search"),
]

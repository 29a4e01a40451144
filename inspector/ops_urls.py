"""`/metrics` (Prometheus) and `/healthz` (load balancers), for the host project to mount where
its tools look for them: `path("", include("inspector.ops_urls"))`."""

from django.urls import path

from inspector.dashboard.views import ops

urlpatterns = [
    path("metrics", ops.metrics, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
]

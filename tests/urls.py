"""URLs for the inspector's tests: the admin (its login is the dashboard's), the dashboard,
and /metrics and /healthz."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("inspector/", include("inspector.urls")),
    path("", include("inspector.ops_urls")),
]

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from deployments import views as deployment_views

admin.site.site_header = "Swedify operations"
admin.site.site_title = "Swedify operations"

urlpatterns = [
    path("health", deployment_views.health, name="health"),
    path("admin/", admin.site.urls),
    path("deploy/releases/", include("deployments.release_views")),
    path("", include("genres.urls")),
    path("", include("genres.page_urls")),
]

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from deployments import views as deployment_views
from swedify import language

admin.site.site_header = "Swedify operations"
admin.site.site_title = "Swedify operations"

urlpatterns = [
    path("health", deployment_views.health, name="health"),
    path("admin/", admin.site.urls),
    path("i18n/setlang", language.set_language, name="set_language"),
    path("i18n/catalog.js", language.javascript_catalog, name="javascript-catalog"),
    path("deploy/releases/", include("deployments.release_views")),
    path("", include("genres.urls")),
    path("", include("genres.page_urls")),
]

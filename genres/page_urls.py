"""Routes of the listener pages (the JSON API and sign-in live in genres/urls.py)."""

from __future__ import annotations

from django.urls import path

from genres import exports, pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("library-card", pages.library_card, name="library-card"),
    path("genres", pages.genres_page, name="genres"),
    path("genres/export.csv", exports.export_csv, name="genres-export-csv"),
    path("genres/export.json", exports.export_json, name="genres-export-json"),
]

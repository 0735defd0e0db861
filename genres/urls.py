"""Routes of sign-in, /session and the listener JSON API (pages live in genres/page_urls.py)."""

from __future__ import annotations

from django.urls import path, re_path

from genres import account_views, auth, playlist_views, sync_views, views

urlpatterns = [
    path("auth/spotify", auth.spotify_start, name="auth-spotify"),
    path("auth/spotify/callback", auth.spotify_callback, name="auth-spotify-callback"),
    path("auth/logout", auth.logout_view, name="auth-logout"),
    path("auth/disconnect", account_views.disconnect, name="auth-disconnect"),
    path("session", auth.session_view, name="session"),
    path("api/scans", views.scans, name="api-scans"),
    path("api/scans/<str:scan_id>", views.scan_detail, name="api-scan"),
    path("api/genres", views.genres, name="api-genres"),
    # --- Playlist jobs (genres/playlist_views.py) ---
    path("api/playlists", playlist_views.playlists, name="api-playlists"),
    path("api/playlist-jobs/<str:job_id>", playlist_views.playlist_job, name="api-playlist-job"),
    # --- Auto-sync (genres/sync_views.py) ---
    path("api/sync", sync_views.sync, name="api-sync"),
    path("api/sync/run", sync_views.sync_run, name="api-sync-run"),
    # --- end of playlist jobs; new /api/ routes go above this catch-all ---
    # [\s\S], not ".": a path with a newline in it is under /api/ too (JSON 404, not HTML).
    re_path(r"^api/(?P<rest>[\s\S]*)$", views.not_found, name="api-not-found"),
]

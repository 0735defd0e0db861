"""Django's makemessages, which also collects the scripts' ``t("…")`` calls.

A script may alias the catalog's gettext to a short name (``var t = window.gettext || …``,
static/swedify/sync.js); xgettext only knows gettext, ngettext and friends, so without this
those strings would never reach djangojs.po and would stay English on Swedish pages. Django's
documented way to pass xgettext more options is this subclass.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import makemessages

# Extra xgettext keywords for the djangojs domain only (no Python function is called t).
SCRIPT_KEYWORDS = ["--keyword=t"]


class Command(makemessages.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("domain") == "djangojs":
            self.xgettext_options = [*makemessages.Command.xgettext_options, *SCRIPT_KEYWORDS]
        super().handle(*args, **options)

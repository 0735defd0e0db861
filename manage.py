#!/usr/bin/env python
"""Django's command-line utility for Swedify."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        from swedify.datadir import data_dir_prepare

        # Every command may open the SQLite file or the broker: the data folder first.
        data_dir_prepare()
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A bad setting is the operator's to fix: one line, not a traceback wall.
        print(f"swedify: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OperationalError as error:
        # Almost always an unreachable or missing database: say so in one line.
        reason = next((line for line in str(error).splitlines() if line.strip()), repr(error))
        print(f"swedify: cannot use the database: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

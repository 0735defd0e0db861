"""What Django's debug page (and error e-mails) may show of settings and the environment.

Django hides settings whose names contain KEY, SECRET, TOKEN, PASS and a few more. Swedify's
service locations are URLs that carry credentials (``DATABASE_URL``, ``REDIS_URL``,
``CELERY_BROKER_URL``, a cache ``LOCATION``), so those are hidden too, and so is any value
that looks like a URL with a user or password in it, whatever its name. The same rules apply
to the local variables shown on a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# A scheme, "://", then user information ending in "@": postgres://user:password@host/db.
URL_WITH_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s]*@", flags=re.IGNORECASE)


class SecretsHiddenFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|CREDENTIAL|PRIVATE|URL|DSN|LOCATION",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        if _is_url_with_credentials(value):
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        # A local variable holding REDIS_URL, a token or a secret is as secret as the setting.
        return [
            (name, self.cleanse_setting(name, value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _is_url_with_credentials(value: Any) -> bool:
    return isinstance(value, str) and URL_WITH_CREDENTIALS.match(value.strip()) is not None

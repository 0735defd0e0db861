"""kombu's filesystem transport with atomic writes: the embedded, server-less Celery broker.

kombu creates a message file and then writes it, so a consumer polling the folder can take
the file while it is still empty and die on the JSON decode ("Unrecoverable error"); with
`celery worker --beat` that happens within minutes. Here a message is written under a hidden
name the consumer ignores and renamed into the queue folder in one step.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from swedify.datadir import folder_create_private


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made here, where they are first needed, by whichever process sends or consumes
        # first (the settings module creates nothing on import).
        for folder in (self.data_folder_in, self.data_folder_out, self.processed_folder):
            folder_create_private(path=Path(folder))
        folder_create_private(path=Path(self.control_folder))

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        # The consumer only takes files named "<stamp>.<queue>.msg"; a leading dot makes the
        # part after the first dot something else until the rename.
        staging = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(staging, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(staging, os.path.join(self.data_folder_out, name))
        except OSError as error:
            raise filesystem.ChannelError(f"Cannot add {name!r} to the queue folder") from error


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make ``filesystem://`` broker URLs of this process use the atomic transport."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"

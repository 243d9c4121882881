"""A user's JSON document (a plan, a markups file, a localizer geometry) read with one clear line when it
is missing or is not JSON; what the document must contain is checked by its own reader."""
from __future__ import annotations

import json
from pathlib import Path

from .exceptions import DBSInputError


def read_json_document(path, what: str):
    """The parsed document at ``path``; :class:`DBSInputError` naming ``what`` and the path otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DBSInputError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DBSInputError(f"{what} {path} is not valid JSON: {error}") from None

"""Strict validation of every caller-supplied name and id, and the only way text enters a filter.

Milvus filter expressions are a small language; a value pasted into one unvalidated could
change what a delete removes. So each kind of value has a strict ASCII pattern (checked with
``re.fullmatch``, so a trailing newline cannot slip through ``$``), and :func:`quote` — the
single door into an expression — re-checks the literal against the narrowest charset any of
them allows before wrapping it in double quotes. None of the allowed characters (letters,
digits, ``_ . - :``) has a meaning inside a Milvus string literal, so no escaping is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from facestream.errors import InvalidParameter

#: Rekognition CollectionId.
COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
#: Rekognition ExternalImageId.
EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
#: Rekognition UserId.
USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
#: Canonical lowercase UUID (what ``str(uuid.uuid4())`` gives).
FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: sha256 of the source image, lowercase hex.
IMAGE_ID = re.compile(r"[0-9a-f]{64}")
#: Embedding model names (also keys of :data:`facestream.similarity.ANCHORS`).
MODEL_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")
#: Keys of ``FaceRecord.quality``.
QUALITY_KEY = re.compile(r"[a-zA-Z_]{1,32}")

# Union of the charsets above: the only characters that may ever appear in a quoted literal.
_LITERAL = re.compile(r"[a-zA-Z0-9_.\-:]{0,255}")

#: Most ids one call may name (Rekognition's DeleteFaces/ListFaces limit is 4096).
MAX_IDS_PER_CALL = 4096


def _show(value: object) -> str:
    """repr() of a value, cut short so a 10 MB string does not end up in a log line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def check(value: object, pattern: re.Pattern[str], what: str) -> str:
    """``value`` if it is a ``str`` fully matching ``pattern``, else :class:`InvalidParameter`."""
    if type(value) is not str or not pattern.fullmatch(value):
        raise InvalidParameter(f"{what} {_show(value)} is not allowed; expected {pattern.pattern}")
    return value


def check_collection_name(name: object) -> str:
    return check(name, COLLECTION_NAME, "collection name")


def check_face_id(face_id: object) -> str:
    return check(face_id, FACE_ID, "face id")


def check_external_image_id(value: object) -> str:
    return check(value, EXTERNAL_IMAGE_ID, "external image id")


def check_user_id(value: object) -> str:
    return check(value, USER_ID, "user id")


def check_model(value: object) -> str:
    return check(value, MODEL_NAME, "model name")


def check_face_ids(face_ids: Iterable[object]) -> list[str]:
    """Validated face ids, duplicates removed, first-seen order kept (1..4096 of them)."""
    if isinstance(face_ids, str | bytes):
        raise InvalidParameter(f"face ids must be a list of strings, got a single {type(face_ids).__name__}")
    ids = list(dict.fromkeys(check_face_id(f) for f in face_ids))
    if not 1 <= len(ids) <= MAX_IDS_PER_CALL:
        raise InvalidParameter(f"expected 1 to {MAX_IDS_PER_CALL} face ids, got {len(ids)}")
    return ids


def check_int(value: object, what: str, lo: int, hi: int) -> int:
    # bool is an int subclass; True as a dimension is a bug, not a 1.
    if type(value) is not int or not lo <= value <= hi:
        raise InvalidParameter(f"{what} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return value


def check_float(value: object, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"{what} must be a number in [{lo}, {hi}], got {_show(value)}")
    f = float(value)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise InvalidParameter(f"{what} must be a number in [{lo}, {hi}], got {_show(value)}")
    return f


def quote(value: str) -> str:
    """The one way a string enters a Milvus filter expression: ``"value"``.

    Callers validate against the specific pattern first; this re-checks the shared charset so
    a forgotten validation fails closed instead of producing an injectable expression.
    """
    if type(value) is not str or not _LITERAL.fullmatch(value):
        raise InvalidParameter(f"value {_show(value)} cannot be used in a filter expression")
    return f'"{value}"'


def quote_list(values: Iterable[str]) -> str:
    """``["a", "b"]`` with every element through :func:`quote`."""
    return "[" + ", ".join(quote(v) for v in values) + "]"

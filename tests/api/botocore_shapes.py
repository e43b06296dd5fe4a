"""Check a Rekognition-protocol answer against botocore's own output shape for its operation.

Walks ``botocore.session.get_session().get_service_model("rekognition")``: every member must be
one the shape declares (no unknown member), of the declared type, every required member present,
strings within the model's ``min``/``max`` length, matching its ``pattern`` (whole string) and
``enum``; numbers within ``min``/``max``; lists within ``min``/``max`` items. Returns the list of
problems, each naming the JSON path; an empty list means the answer fits.

The body checked is the JSON on the wire (before boto3 parses it), so timestamps are epoch
seconds (numbers), as Rekognition's JSON 1.1 protocol sends them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("rekognition")


def output_shape(operation: str) -> StructureShape | None:
    shape = service_model().operation_model(operation).output_shape
    return shape if isinstance(shape, StructureShape) else None


def problems(operation: str, body: Any) -> list[str]:
    """Every way ``body`` (the parsed JSON answer of ``operation``) departs from botocore's shape."""
    shape = output_shape(operation)
    if shape is None:
        return [] if body in ({}, None) else [f"{operation}: the model has no output, got {body!r:.80}"]
    out: list[str] = []
    _check(shape, body, operation, out)
    return out


def _bounds(shape: Shape) -> tuple[Any, Any]:
    return shape.metadata.get("min"), shape.metadata.get("max")


def _check(shape: Shape, value: Any, path: str, out: list[str]) -> None:
    t = shape.type_name
    if t == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value:
                out.append(f"{path}: required member {name} missing ({shape.name})")
        for name, v in value.items():
            member = shape.members.get(name)
            if member is None:
                out.append(f"{path}.{name}: not a member of {shape.name}")
                continue
            if v is None:
                out.append(f"{path}.{name}: null (omit the member instead)")
                continue
            _check(member, v, f"{path}.{name}", out)
    elif t == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            out.append(f"{path}: expected a list ({shape.name}), got {type(value).__name__}")
            return
        lo, hi = _bounds(shape)
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            out.append(f"{path}: {len(value)} items, the model allows [{lo}, {hi}]")
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", out)
    elif t == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            out.append(f"{path}: expected a map ({shape.name}), got {type(value).__name__}")
            return
        for k, v in value.items():
            _check(shape.key, k, f"{path}<key>", out)
            _check(shape.value, v, f"{path}[{k!r}]", out)
    elif t == "string":
        if not isinstance(value, str):
            out.append(f"{path}: expected a string ({shape.name}), got {type(value).__name__} {value!r:.60}")
            return
        lo, hi = _bounds(shape)
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            out.append(f"{path}: length {len(value)}, the model allows [{lo}, {hi}] ({shape.name})")
        pattern = shape.metadata.get("pattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            out.append(f"{path}: {value!r:.80} does not match {shape.name}'s pattern {pattern}")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            out.append(f"{path}: {value!r} is not one of {shape.name}'s values {enum}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(
                f"{path}: expected an integer ({shape.name}), got {type(value).__name__} {value!r:.60}"
            )
            return
        _range(shape, value, path, out)
    elif t in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{path}: expected a number ({shape.name}), got {type(value).__name__} {value!r:.60}")
            return
        _range(shape, value, path, out)
    elif t == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean ({shape.name}), got {type(value).__name__}")
    elif t == "timestamp":
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{path}: expected epoch seconds ({shape.name}), got {type(value).__name__}")
    elif t == "blob":
        if not isinstance(value, str):
            out.append(f"{path}: expected base64 text ({shape.name}), got {type(value).__name__}")
    else:
        out.append(f"{path}: shape type {t} not handled by the validator")


def _range(shape: Shape, value: float, path: str, out: list[str]) -> None:
    lo, hi = _bounds(shape)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        out.append(f"{path}: {value} is outside [{lo}, {hi}] ({shape.name})")

"""How a message travels: its ``schema_version``, strict JSON decoding, UTC timestamps.

``schema_version`` is ``"MAJOR.MINOR"`` (an integer ``N``, what older finpulse wrote, reads as
``"N.0"``). A newer minor only adds optional fields, so a reader keeps working through a
rolling upgrade: it drops the fields it does not know and reads the rest. A newer major is
refused, never guessed at. Within the versions a reader knows, an unknown field is still an
error, because there it can only be a producer's typo (``titel``) that would silently lose data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator

SCHEMA_VERSION = "1.0"  # bump the minor for a new optional field, the major for anything else


class ContractError(ValueError):
    """A message that does not satisfy its contract; ``field`` says which part is wrong."""

    def __init__(self, model: str, field: str, message: str) -> None:
        self.model, self.field, self.message = model, field, message
        super().__init__(f"{model}.{field}: {message}" if field else f"{model}: {message}")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (e.g. 2026-01-02T03:04:05Z)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def schema_version(value: str | int) -> tuple[int, int]:
    """``(major, minor)`` of a wire ``schema_version``.

    >>> schema_version("1.2"), schema_version(1), schema_version(SCHEMA_VERSION) <= (1, 0)
    ((1, 2), (1, 0), True)
    """
    major, _, minor = str(value).partition(".")
    if not (major.isdigit() and (minor.isdigit() or not minor)):
        raise ValueError(f"schema_version must look like MAJOR.MINOR (e.g. 1.0), got {value!r}")
    return int(major), int(minor or 0)


_CURRENT = schema_version(SCHEMA_VERSION)


class Message(BaseModel):
    """A versioned wire message: frozen, unknown fields refused (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    schema_version: str = SCHEMA_VERSION

    @field_validator("schema_version", mode="before")
    @classmethod
    def _known_version(cls, v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ValueError(f"schema_version must look like MAJOR.MINOR (e.g. 1.0), got {v!r}")
        major, minor = schema_version(v)
        if major > _CURRENT[0]:
            raise ValueError(
                f"schema_version {major}.{minor} is a newer major than this finpulse reads "
                f"({_CURRENT[0]}.x); upgrade finpulse to read it"
            )
        if major < 1:
            raise ValueError("schema_version must be >= 1")
        return f"{major}.{minor}"


M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(model: type[M], data: bytes | str) -> M:
    """Parse one JSON message, or raise :class:`ContractError` naming the first bad field.

    A message from a newer minor version is read without the fields this code does not know.
    """
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        error = exc
    if any(e["type"] == "extra_forbidden" for e in error.errors()):
        known = _known_fields_of_newer_minor(model, data)
        if known is not None:
            try:
                return model.model_validate(known)
            except ValidationError as exc:
                error = exc
    err = error.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        field, msg = "", f"not valid JSON ({err['ctx'].get('error', msg)})"
    raise ContractError(model.__name__, field, msg) from None


def _known_fields_of_newer_minor(model: type[BaseModel], data: bytes | str) -> Any:
    """The message without the fields ``model`` lacks, if it comes from a newer minor version
    of the current major; else None (the strict error stands)."""
    raw = json.loads(data)
    try:
        version = schema_version(raw["schema_version"])
    except (KeyError, TypeError, ValueError):
        return None
    if version[0] != _CURRENT[0] or version <= _CURRENT:
        return None
    return _known_only(model, raw)


def _known_only(model: type[BaseModel], raw: Any) -> Any:
    """``raw`` keeping only the fields of ``model``, also in its nested messages."""
    if not isinstance(raw, dict):
        return raw
    kept = {}
    for name, value in raw.items():
        if (info := model.model_fields.get(name)) is None:
            continue
        nested = info.annotation
        if get_origin(nested) is list:
            (nested,) = get_args(nested)
            if isinstance(value, list) and _is_model(nested):
                value = [_known_only(nested, item) for item in value]
        elif _is_model(nested):
            value = _known_only(nested, value)
        kept[name] = value
    return kept


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)

"""The messages between the app and its engine processes, beside the events they stream.

One JSON object a line in both directions. The app sends a request; the engine answers
with the events of ``training.events`` (the lines of a run's ``events.jsonl``; a search adds
those of ``training.search.events``) and, for a tool or a call, one more message:

====================  =========  =================================================
message               direction  meaning
====================  =========  =================================================
``TrainRequest``      to child   train a new run of ``config`` in ``run_dir``
``ResumeRequest``     to child   continue the stopped run in ``run_dir``
``ToolRequest``       to child   run one sanity tool on ``config``
``SearchRequest``     to child   search hyperparameters of ``config`` into ``out_dir``
``Stop``              to child   end the job after the current batch
``Call``              to child   answer one small question (``method``, ``params``)
``ToolResult``        to app     a tool's result, as plain values
``Reply``             to app     a call's ``result``, or its ``error``
====================  =========  =================================================

Every message carries its ``type`` and the protocol ``version``; ``decode`` refuses a
line that is not JSON, a type it does not know and a version it does not speak, with a
``ProtocolError`` that says what it received.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from training.events import EVENT_TYPES, Event, event_from_dict, to_jsonable
from training.search.events import SEARCH_EVENT_TYPES, search_event_from_dict

PROTOCOL_VERSION = 1
_FIELD_TYPES = {"str": str, "dict": dict}  # the annotations checked on decode; Any is not


class ProtocolError(ValueError):
    """A line is not a message of this protocol; the text says what was received."""


@dataclass(frozen=True)
class Message:
    type: ClassVar[str] = "message"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "version": PROTOCOL_VERSION}
        data.update({f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """Rebuilds a message; unknown, missing or mistyped fields raise ``ProtocolError``."""
        values = {k: v for k, v in data.items() if k not in ("type", "version")}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ProtocolError(f"A '{cls.type}' message has no field {unknown[0]!r}; its fields are: "
                                f"{', '.join(fields) or 'none'}. Received: {_short(data)}")
        for name, spec in fields.items():
            required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            if name not in values:
                if required:
                    raise ProtocolError(f"A '{cls.type}' message needs `{name}`. Received: {_short(data)}")
                continue
            expected = _FIELD_TYPES.get(str(spec.type))
            if expected is not None and not isinstance(values[name], expected):
                raise ProtocolError(f"`{name}` of a '{cls.type}' message must be a {spec.type}. "
                                    f"Received: {name}={values[name]!r}")
        return cls(**values)


@dataclass(frozen=True)
class TrainRequest(Message):
    """Trains a new run; ``config`` is ``Config.to_dict()``."""
    type: ClassVar[str] = "train"
    config: dict
    run_dir: str


@dataclass(frozen=True)
class ResumeRequest(Message):
    """Continues a stopped run in its folder, with its own ``config.json``."""
    type: ClassVar[str] = "resume"
    run_dir: str


@dataclass(frozen=True)
class ToolRequest(Message):
    """Runs one sanity tool (``check_setup``, ``overfit_tiny_subset``, ``lr_range_test``)."""
    type: ClassVar[str] = "tool"
    tool: str
    config: dict


@dataclass(frozen=True)
class SearchRequest(Message):
    """Searches hyperparameters (``training.search.run_search``): ``trials`` runs of ``config``
    in ``out_dir``; ``space`` in SPACE.json form ({} for the default space), ``options`` the
    fields of ``SearchOptions``."""
    type: ClassVar[str] = "search"
    config: dict
    out_dir: str
    trials: int
    space: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stop(Message):
    """Ends the running job after its current batch; the best model is kept."""
    type: ClassVar[str] = "stop"


@dataclass(frozen=True)
class Call(Message):
    """One small question to a helper process (``training.service.helper.METHODS``)."""
    type: ClassVar[str] = "call"
    method: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reply(Message):
    """A call's answer: ``result``, or ``error`` (the sentence for the user) and its type."""
    type: ClassVar[str] = "reply"
    result: Any = None
    error: str = ""
    error_type: str = ""


@dataclass(frozen=True)
class Progress(Message):
    """How far a long call has come, sent before its ``Reply`` (e.g. images scored of all)."""
    type: ClassVar[str] = "progress"
    done: int
    total: int


@dataclass(frozen=True)
class ToolResult(Message):
    """A sanity tool's result: its dataclass as a dict, its hints as event dicts."""
    type: ClassVar[str] = "tool_result"
    tool: str
    result: dict = field(default_factory=dict)


Request = TrainRequest | ResumeRequest | ToolRequest | SearchRequest
REQUEST_TYPES = (TrainRequest, ResumeRequest, ToolRequest, SearchRequest)
MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.type: cls for cls in (TrainRequest, ResumeRequest, ToolRequest, Stop, Call, Reply, Progress, ToolResult,
                              SearchRequest)
}


def encode(item: Message | Event) -> bytes:
    """One line of the protocol, newline included."""
    return (json.dumps(item.to_dict()) + "\n").encode("utf-8")


def decode(line: bytes | str) -> Message | Event:
    """Reads one line: a message of this protocol or an engine event.

    Raises:
        ProtocolError: the line is not a JSON object, its type is unknown, its version is
            not ``PROTOCOL_VERSION`` or its fields do not fit its type.
    """
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProtocolError(f"Expected one JSON object a line. Received: {_short(line)}")
    kind = data.get("type")
    if kind in EVENT_TYPES or kind in SEARCH_EVENT_TYPES:
        try:
            return event_from_dict(data) if kind in EVENT_TYPES else search_event_from_dict(data)
        except TypeError as error:  # a required field is missing
            raise ProtocolError(f"A '{kind}' event is incomplete ({error}). Received: {_short(data)}") from None
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        known = ", ".join([*MESSAGE_TYPES, *EVENT_TYPES, *SEARCH_EVENT_TYPES])
        raise ProtocolError(f"Unknown message type {kind!r}; known: {known}. Received: {_short(data)}")
    if data.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"This engine speaks protocol version {PROTOCOL_VERSION}. "
                            f"Received: version={data.get('version')!r} in {_short(data)}")
    return cls.from_dict(data)


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """An image batch as plain values: base64 of its raw uint8 bytes, with its shape."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(payload: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload["data"]), dtype=np.uint8).reshape(payload["shape"])


def _short(value: Any, limit: int = 200) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value.strip() if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")

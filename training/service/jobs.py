"""The jobs an engine child process runs: a new run, a resumed run, a sanity tool, a search.

Each job reports through ``emit`` and never raises: one that cannot run ends with a
``Failed`` event whose message says what was wrong and what to do.
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
from typing import Callable

from training import api
from training.events import Event, Failed
from training.service.client import user_message
from training.service.messages import Request, ResumeRequest, SearchRequest, ToolRequest, ToolResult

TOOLS = ("check_setup", "overfit_tiny_subset", "lr_range_test")
Emit = Callable[[Event | ToolResult], None]


def run_job(request: Request, *, emit: Emit, stop: threading.Event) -> None:
    """Runs ``request`` to its end; its last item through ``emit`` is its outcome."""
    try:
        if isinstance(request, ResumeRequest):
            api.resume_training(request.run_dir, on_event=emit, stop=stop)
        elif isinstance(request, ToolRequest):
            emit(run_tool(request, emit=emit, stop=stop))
        elif isinstance(request, SearchRequest):
            run_search_job(request, emit=emit, stop=stop)
        else:
            api.run_training(api.Config.from_dict(request.config), run_dir=request.run_dir,
                             on_event=emit, stop=stop)
    except Exception as error:  # noqa: BLE001  (sent to the app, which shows it)
        emit(failure(error, run_dir=getattr(request, "run_dir", "")))


def run_tool(request: ToolRequest, *, emit: Emit, stop: threading.Event) -> ToolResult:
    """Runs one sanity tool; its result dataclass travels as plain values.

    Raises:
        ValueError: ``request.tool`` is not one of ``TOOLS``.
        ConfigError, DataError: the tool's own errors (bad settings, unusable data).
    """
    if request.tool not in TOOLS:
        raise ValueError(f"`tool` must be one of {', '.join(TOOLS)}. Received: tool={request.tool!r}")
    tool = getattr(api, request.tool)
    result = tool(api.Config.from_dict(request.config), on_event=emit, stop=stop)
    payload = {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}
    payload["hints"] = [hint.to_dict() for hint in payload.get("hints", [])]
    return ToolResult(tool=request.tool, result=payload)


def run_search_job(request: SearchRequest, *, emit: Emit, stop: threading.Event) -> None:
    """Runs a search; its events, then its ``SearchFinished``, go through ``emit``.

    Raises:
        SpaceError, SearchError: the space or the folder cannot be used (``training.search``).
    """
    # Not through training.api: the search itself trains each trial through it.
    from training.search import SearchOptions, parse_space, run_search

    config = api.Config.from_dict(request.config)
    space = parse_space(request.space, config, source="the search space") if request.space else None
    run_search(config, out_dir=request.out_dir, trials=request.trials, space=space, on_event=emit, stop=stop,
               options=SearchOptions(**request.options))


def failure(error: Exception, run_dir: str = "") -> Failed:
    """The ``Failed`` event for an exception, its traceback in the details."""
    kind = type(error).__name__
    return Failed(message=user_message(kind, str(error)), error_type=kind, run_dir=run_dir,
                  details=traceback.format_exc())

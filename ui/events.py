"""From a Gradio event to a handler and back: inputs by name in, changes by name out.

A handler is a plain module-level function `handler(session, **inputs) -> Changes` (or a
generator of them, to stream): it receives the signed-in user's `Session` and the inputs named
as the screen names its components, and returns a dict keyed by those same names. `listen`
builds the function Gradio calls: it resolves the session from the request, passes the event's
data (`event=`) when the handler asks for it, and turns the names into components, so no list of
outputs is ever matched by position. A `PalimpsestError` becomes the status line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import gradio as gr

from engine.errors import PalimpsestError
from ui.sessions import Sessions

Changes = dict[str, Any]  # screen component name -> its new value (or gr.update)


class Screen(Protocol):
    def apply(self, changes: Changes) -> dict: ...

    def outputs(self, names: tuple[str, ...] | None = None) -> list: ...


def refusal(error: PalimpsestError) -> Changes:
    return {"status": f"**Cannot do that:** {error}"}


def listen(
    sessions: Sessions,
    screen: Screen,
    trigger: Callable,
    handler: Callable,
    inputs: dict[str, gr.components.Component] | None = None,
    event: type[gr.EventData] | None = None,
    outputs: tuple[str, ...] | None = None,
    **options: Any,
) -> None:
    """Wire `trigger` (e.g. `button.click`) to `handler`, with `inputs` named as the handler's
    parameters; `event` (gr.SelectData, gr.EventData) passes the event's data as `event=`.
    `outputs` names what the handler may change (default: anything on the screen); the
    status line is always among them, for refusals. Gradio's own progress overlay is off:
    the status line says what is happening, and an overlay would hide the streaming draft."""
    inputs = inputs or {}
    names = list(inputs)
    streaming = inspect.isgeneratorfunction(handler)

    def arguments(values: tuple) -> tuple[dict, gr.Request]:
        *given, request = values
        named = dict(zip(names + (["event"] if event else []), given, strict=True))
        return named, request

    if streaming:

        def adapter(*values):
            named, request = arguments(values)
            try:
                for changes in handler(sessions(request), **named):
                    yield screen.apply(changes)
            except PalimpsestError as error:
                yield screen.apply(refusal(error))

    else:

        def adapter(*values):
            named, request = arguments(values)
            try:
                return screen.apply(handler(sessions(request), **named))
            except PalimpsestError as error:
                return screen.apply(refusal(error))

    # Gradio reads the parameters to know where to put the request and the event data.
    parameters = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    annotations: dict[str, Any] = {"request": gr.Request}
    if event is not None:
        parameters.append(inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD))
        annotations["event"] = event
    parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    adapter.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    adapter.__annotations__ = annotations
    adapter.__name__ = handler.__name__
    adapter.__doc__ = handler.__doc__
    if outputs is not None and "status" not in outputs:
        outputs = ("status", *outputs)
    options.setdefault("show_progress", "hidden")
    trigger(adapter, inputs=list(inputs.values()), outputs=screen.outputs(outputs), **options)

"""How a computed result reaches the screen without ``diagnostics`` knowing the presentation layer.

``diagnostics/`` computes and never imports anything presentational (``bayesid.report``, matplotlib,
jinja2, rich). A :class:`~bayesid.diagnostics.Diagnosis` still shows itself in a notebook
(``_repr_html_``), plots itself (``plot_*``) and draws progress bars: it asks this registry for the
renderer of a *kind* (``"diagnosis_html"``, ``"plot_contraction"``, ``"progress"``, ...). The
presentation layer registers its renderers with :func:`register` when it is imported.

When nothing is registered for a kind, the package root (``bayesid``) is asked once to load its
presentation layer (its ``_load_presentation()`` hook, if it has one); ``diagnostics`` never names that
layer itself. A kind still missing afterwards raises :class:`DisplayUnavailableError`, which says what
to import, except for ``"progress"``, which falls back to no bar (progress bars are optional).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bayesid.errors import BayesidError

__all__ = ["register", "renderer", "progress", "registered", "DisplayUnavailableError"]

_RENDERERS: dict[str, Callable] = {}
_HOST_ASKED = False


class DisplayUnavailableError(BayesidError):
    """No renderer is registered for something that was asked to be shown."""


def register(kind: str, fn: Callable) -> None:
    """Register ``fn`` as the renderer of ``kind`` (the last registration wins).

    Parameters
    ----------
    kind : str
        What it renders, e.g. ``"diagnosis_html"``, ``"plot_pair"``, ``"progress"``.
    fn : callable
        The renderer. ``"progress"`` renderers are called as ``fn(iterable, description=..., total=...)``
        and return an iterable.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"a display kind is a non-empty string, got {kind!r}")
    if not callable(fn):
        raise TypeError(f"the renderer of {kind!r} must be callable, got {type(fn).__name__}")
    _RENDERERS[kind] = fn


def registered() -> list[str]:
    """The kinds that have a renderer now."""
    return sorted(_RENDERERS)


def _ask_host() -> None:
    global _HOST_ASKED
    if _HOST_ASKED:
        return
    _HOST_ASKED = True
    root = importlib.import_module(__name__.split(".")[0])
    hook = getattr(root, "_load_presentation", None)
    if callable(hook):
        hook()


def renderer(kind: str) -> Callable:
    """The renderer registered for ``kind``.

    Raises
    ------
    DisplayUnavailableError
        Nothing is registered for ``kind``, even after the package root was asked to load its
        presentation layer.
    """
    fn = _RENDERERS.get(kind)
    if fn is None:
        try:
            _ask_host()
        except ImportError as e:  # the presentation layer's own dependencies are missing
            raise DisplayUnavailableError(
                f"cannot render {kind!r}: the presentation layer failed to import ({e}). Install bayesid "
                "with its report dependencies (jinja2, matplotlib) and `import bayesid.report`.") from e
        fn = _RENDERERS.get(kind)
    if fn is None:
        raise DisplayUnavailableError(
            f"no renderer for {kind!r} is registered: import bayesid.report (or bayesid) to render a "
            f"Diagnosis; registered now: {registered() or 'none'}")
    return fn


def progress(iterable, description: str = "", total: int | None = None):
    """``iterable`` wrapped in the registered progress bar, or unchanged where none can be had."""
    try:
        fn = renderer("progress")
    except DisplayUnavailableError:
        return iterable
    return fn(iterable, description=description, total=total)

"""The boxes at the top of a page: where and in which configuration it was executed.

Each is a MyST admonition (``nb_render_markdown_format: myst`` renders it), so a smoke page can
never be mistaken for a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["chapter_banner", "records_banner"]


def _markdown(text: str) -> Any:
    from IPython.display import Markdown  # optional: IPython exists wherever a notebook runs

    return Markdown(text)


def chapter_banner(record: Mapping[str, Any], configuration: str,
                   reductions: Mapping[str, tuple[Any, Any]]) -> Any:
    """A MyST admonition saying where and in which configuration a chapter was executed.

    Shown at the top of every training chapter; on a full GPU execution it is a short note.
    """
    env = record["environment"]
    date = record["started_at"][:10]
    if configuration == "smoke":
        changes = ", ".join(f"`{k}` {full!r} → {small!r}" for k, (full, small) in reductions.items())
        body = (
            f"This page was executed on **{env['device']}** on {date} in the **smoke configuration** "
            f"({changes}). It shows that every cell runs end to end; its numbers are tiny-budget "
            "checks and say nothing about the methods. The defaults in the parameters cell are the "
            "full configuration; see the [status page](status.ipynb) for where each chapter ran."
        )
        title = "CPU smoke configuration — not a result" if env["device_type"] == "cpu" else \
            "Smoke configuration — not a result"
        return _markdown(f"```{{admonition}} {title}\n:class: warning\n\n{body}\n```")
    if env["device_type"] == "cpu":
        body = (f"This page was executed in the full configuration, but on **{env['device']}** on {date}; "
                "timings are CPU timings.")
        return _markdown(f"```{{admonition}} Executed on CPU\n:class: note\n\n{body}\n```")
    body = f"Executed in the full configuration on **{env['device']}** on {date} (see the [status page](status.ipynb))."
    return _markdown(f"```{{note}}\n{body}\n```")


def records_banner(records: Sequence[Mapping[str, Any]]):
    """A MyST admonition for pages built from records: which chapters are smoke-only or missing."""
    smoke = [r.get("title") or r["chapter"] for r in records if r.get("configuration") == "smoke"]
    if not records:
        body = "No chapter has written a record yet: execute the chapters first (see the introduction)."
    elif smoke:
        body = (f"{len(smoke)} of the {len(records)} executed chapters ran in the **CPU smoke configuration** "
                f"({', '.join(smoke)}). Their numbers appear below only as \"CPU smoke configuration — not a "
                "result\"; they will be replaced when those chapters are executed in the full configuration.")
    else:
        return _markdown("All chapters behind this page ran in the full configuration (see the [status page](status.ipynb)).")
    return _markdown(f"```{{admonition}} Not yet results\n:class: warning\n\n{body}\n```")

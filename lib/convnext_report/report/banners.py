"""The boxes at the top of a page (MyST admonitions): where and in which configuration it was executed,
so a smoke page is never mistaken for a result; ``Chapter.finish`` updates a chapter's with its runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["SMOKE_LABEL", "Banner", "admonition", "chapter_banner", "markdown", "provenance", "provenance_text",
           "records_banner", "settings_table"]

#: what stands wherever a number comes from the CPU smoke configuration
SMOKE_LABEL = "CPU smoke configuration — not a result"


def admonition(title: str, body: str, kind: str = "warning") -> str:
    """A MyST admonition (``nb_render_markdown_format: myst`` renders it)."""
    return f"```{{admonition}} {title}\n:class: {kind}\n\n{body}\n```"


def markdown(text: str) -> Any:
    from IPython.display import Markdown  # optional: IPython exists wherever a notebook runs

    return Markdown(text)


class Banner:
    """A chapter's banner: Markdown text shown with a display id, so :meth:`update` can replace it."""

    def __init__(self, text: str, display_id: str) -> None:
        self.data, self.display_id, self.shown = text, display_id, False

    def _repr_markdown_(self) -> str:
        return self.data

    def _ipython_display_(self) -> None:
        from IPython.display import display  # optional: IPython exists wherever a notebook runs

        display(markdown(self.data), display_id=self.display_id)
        self.shown = True

    def update(self, text: str) -> None:
        """Replace the text (and the displayed output, if it was displayed)."""
        self.data = text
        if self.shown:
            from IPython.display import update_display

            update_display(markdown(text), display_id=self.display_id)


def provenance(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Where and how long a chapter's runs were trained, from its record's run rows."""
    dates = sorted(str(r.get("trained_at") or "")[:10] for r in rows if r.get("trained_at"))
    devices = dict(Counter(str(r.get("device") or "unknown device") for r in rows))
    return {"runs": len(rows), "from_store": sum(r.get("from") == "store" for r in rows),
            "trained_here": sum(r.get("from") == "trained" for r in rows), "devices": devices,
            "first": dates[0] if dates else None, "last": dates[-1] if dates else None,
            "minutes": round(sum(float(r.get("minutes") or 0.0) for r in rows), 2),
            "gpu_minutes": round(sum(float(r.get("gpu_minutes") or 0.0) for r in rows), 2)}


def provenance_text(prov: Mapping[str, Any] | None) -> str:
    """``"Its 6 runs were trained on **NVIDIA H100** (2026-11-20 – 2026-11-21) in 12.5 minutes (12.5 GPU
    minutes); 6 read back from the result store."``"""
    if not prov or not prov.get("runs"):
        return ""
    devices = " and ".join(f"**{d}**" + (f" ({n})" if len(prov["devices"]) > 1 else "")
                           for d, n in prov["devices"].items())
    span = prov["first"] if prov["first"] == prov["last"] else f"{prov['first']} – {prov['last']}"
    cost = f" in {prov['minutes']:.1f} minutes ({prov['gpu_minutes']:.1f} GPU minutes)" if "minutes" in prov else ""
    stored = f"{prov['from_store']} read back from the result store" if prov["from_store"] else "all trained here"
    runs = "Its 1 run was" if prov["runs"] == 1 else f"Its {prov['runs']} runs were"
    return f"{runs} trained on {devices} ({span}){cost}; {stored}."


def settings_table(params: Mapping[str, Any], changed: Mapping[str, tuple[Any, str]]) -> pd.DataFrame:
    """A chapter's parameters: value, the full configuration's where it differs, who set it."""
    rows = [{"parameter": k, "value": repr(v), "full configuration": repr(changed[k][0]) if k in changed else "",
             "set by": changed[k][1] if k in changed else "default"} for k, v in params.items()]
    return pd.DataFrame(rows).set_index("parameter")


def chapter_banner(record: Mapping[str, Any], changed: Mapping[str, tuple[Any, str]],
                   prov: Mapping[str, Any] | None = None) -> str:
    """The chapter's admonition: where and in which configuration it ran, what differs from the full
    configuration, and (``prov``) where and how long its runs were trained."""
    env = record["environment"]
    date = record["started_at"][:10]
    trained = provenance_text(prov)
    differs = ", ".join(f"`{k}` {full!r} → {record['parameters'][k]!r} ({by})" for k, (full, by) in changed.items()
                        if k != "smoke")
    elsewhere = bool(prov) and prov.get("from_store", 0) > 0 and set(prov.get("devices", {})) != {env["device"]}
    if record["configuration"] == "smoke":
        body = (
            f"This page was executed on **{env['device']}** on {date} in the **smoke configuration** "
            f"({differs}). It shows that every cell runs end to end; its numbers are tiny-budget "
            "checks and say nothing about the methods. The defaults in the parameters cell are the "
            "full configuration; see the [status page](status.ipynb) for where each chapter ran."
            + (f" {trained}" if trained else "")
        )
        return admonition(SMOKE_LABEL if env["device_type"] == "cpu" else "Smoke configuration — not a result", body)
    changes = f" Changed from the full configuration: {differs}." if differs else ""
    if elsewhere:
        body = (f"{trained} This page was rendered from those stored runs on **{env['device']}** on {date} "
                f"(see the [status page](status.ipynb)).{changes}")
        return admonition("Full configuration, runs trained elsewhere", body, "note")
    if env["device_type"] == "cpu":
        body = (f"This page was executed in the full configuration, but on **{env['device']}** on {date}; "
                "timings are CPU timings." + (f" {trained}" if trained else "") + changes)
        return admonition("Executed on CPU", body, "note")
    body = (f"Executed in the full configuration on **{env['device']}** on {date} (see the [status page](status.ipynb))."
            + (f" {trained}" if trained else "") + changes)
    return f"```{{note}}\n{body}\n```"
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
        return markdown("All chapters behind this page ran in the full configuration (see the [status page](status.ipynb)).")
    return markdown(admonition("Not yet results", body))

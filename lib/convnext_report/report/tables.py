"""The one way every page shows a table (:func:`show`): MyST Markdown with readable headers and units, no index,
"—" for a missing value, cells that wrap; and chapter 2's feature-map sizes. Runs as rows: :mod:`..summary`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .. import complexity
from ..models import build_model
from ..summary import stage_of

__all__ = ["Markdown", "Table", "show", "stage_table"]

#: readable headers, with units, for the columns the pages show (others: ``_`` becomes a space)
_HEADERS = {
    "label": "run", "top1": "test top-1 (%)", "top5": "test top-5 (%)", "selection_top1": "held-out top-1 (%)",
    "train_top1": "train top-1 (%)", "gap": "train − test (points)", "peeked_top1": "best test top-1 over epochs (%)",
    "selected_epoch": "selected epoch", "epochs_run": "epochs run", "minutes": "minutes",
    "gpu_minutes": "GPU minutes", "n": "seeds", "mean": "test top-1 (%), mean", "std": "std (points)",
    "params_M": "parameters (M)", "stem_stride": "stem stride", "image_size": "image (px)",
    "images_per_second": "training images/s", "device": "trained on", "batch_size": "batch",
    "ours-real": "ours, real data (images/s)", "ours-synthetic": "ours, synthetic data (images/s)",
    "eager-reference": "plain eager loop (images/s)",
}
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|#])")


class Markdown:
    """A cell's text that is already MyST Markdown (a link, code): :func:`show` does not escape it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _header(name: Any) -> str:
    name = str(name)
    stat = re.fullmatch(r"(.+)_(mean|std)", name)
    if stat and stat[1] in _HEADERS:
        return f"{_HEADERS[stat[1]]}, {stat[2]}"
    macs = re.fullmatch(r"GMACs_(\d+)", name)
    return f"GMACs at {macs.group(1)} px" if macs else _HEADERS.get(name, name.replace("_", " "))


def _cell(value: Any, digits: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, Markdown):
        return value.text.replace("|", "\\|")
    if isinstance(value, float):
        text = f"{value:g}" if digits is None else f"{value:.{digits}f}"
        return f"{value:.2g}" if value and float(text) == 0 else text
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(value).replace("\n", " "))


class Table:
    """A table as a page shows it: ``_repr_markdown_`` (MyST, rendered by the book) and plain text."""

    def __init__(self, frame: pd.DataFrame, digits: int | None = 1) -> None:
        self.frame, self.digits = frame, digits

    def _repr_markdown_(self) -> str:
        cells = [[_cell(v, self.digits) for v in row] for row in self.frame.itertuples(index=False)]
        numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in self.frame.dtypes]
        lines = ["| " + " | ".join(_cell(_header(c), 0) for c in self.frame.columns) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])

    def __repr__(self) -> str:
        return self.frame.rename(columns=_header).to_string(index=False, na_rep="—")


def show(data: pd.DataFrame | Mapping[str, Any], columns: Sequence[str] | None = None, *,
         digits: int | None = 1) -> Table:
    """``data`` as a page shows it: a frame's ``columns`` (a named index first), or a mapping's keys as "setting"
    and "value"; floats with ``digits`` decimals (None: as short as exact)."""
    if isinstance(data, Mapping):
        keys = columns or list(data)
        return Table(pd.DataFrame({"setting": keys, "value": [data[k] for k in keys]}), digits)
    frame = data if isinstance(data.index, pd.RangeIndex) else data.reset_index()
    return Table(frame[list(columns)] if columns is not None else frame, digits)


def stage_table(model: str, settings: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Feature-map ``side`` and ``channels`` after each ``layer`` of ``model``, per ``(image_size, stem_stride)``."""
    rows = []
    for size, stride in settings:
        with torch.device("meta"):  # shapes only: no weights, no compute
            net = build_model(model, num_classes=10, stem_stride=stride)
        rows += [{"setting": f"{size} px, stem stride {stride}", "layer": stage_of(layer), "side": int(height),
                  "channels": int(channels)} for layer, (channels, height, _) in complexity.stage_shapes(net, size)]
    return pd.DataFrame(rows)


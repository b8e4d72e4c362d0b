"""DyT's learnable alpha during training: a per-epoch log written by a hook, read back as a frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .tables import field_of, stage_of

__all__ = ["AlphaLog", "alpha_frame"]


class AlphaLog:
    """``on_epoch_end`` hook: record every DyT alpha after each epoch in ``<run>/dyt_alpha.csv``.

    It reads the ``checkpoint_last.pt`` the runner wrote just before calling it (columns
    ``epoch`` (1-based; 0 is the initial value), ``layer``, ``alpha``).
    """

    FILE = "dyt_alpha.csv"

    def __init__(self, folder: Path, alpha_init: float) -> None:
        self.folder, self.alpha_init = Path(folder), float(alpha_init)

    def __call__(self, row: Mapping[str, Any]) -> None:
        state = torch.load(self.folder / "checkpoint_last.pt", map_location="cpu", weights_only=True)["model"]
        alphas = {k[: -len(".alpha")]: float(v.reshape(-1)[0]) for k, v in state.items() if k.endswith(".alpha")}
        file = self.folder / self.FILE
        old = pd.read_csv(file) if file.is_file() else pd.DataFrame(
            {"epoch": 0, "layer": list(alphas), "alpha": self.alpha_init})
        new = pd.DataFrame({"epoch": int(row["epoch"]) + 1, "layer": list(alphas), "alpha": list(alphas.values())})
        pd.concat([old[old["epoch"] != int(row["epoch"]) + 1], new]).to_csv(file, index=False)


def alpha_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """DyT alphas per epoch from the runs' ``dyt_alpha.csv`` (written by :class:`AlphaLog`).

    Columns: ``label``, ``seed``, ``epoch``, ``layer``, ``stage``, ``alpha``; empty if no run logged any.
    """
    parts = []
    for label, group in runs.items():
        for run in group:
            file = Path(field_of(run, "path")) / "dyt_alpha.csv"
            if file.is_file():
                frame = pd.read_csv(file)
                parts.append(frame.assign(label=label, seed=getattr(field_of(run, "config"), "seed", None),
                                          stage=frame["layer"].map(stage_of)))
    columns = ["label", "seed", "epoch", "layer", "stage", "alpha"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)



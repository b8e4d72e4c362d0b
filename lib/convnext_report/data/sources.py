"""Where a split's parquet shards are: a local data folder, or the same shards on the Hugging Face hub.

The data root is, in order: the ``data_dir`` argument, ``$CONVNEXT_REPORT_DATA``, else the hub
(``data_dir="hub"`` forces it). A local root holds ``<root>/<spec.local_subdir>/<split>-*.parquet``; the hub's
dataset repository holds the same shards in the last folder of that path (``plain_text/``, ``data/``),
fetched into the Hugging Face cache by ``huggingface_hub.snapshot_download`` (offline: read from it). Either
way pyarrow alone reads them: labels from the label column, class names from the ``ClassLabel`` in the
schema's ``huggingface`` metadata. A bad shard is a :class:`DataError` naming it; a hub that cannot serve the
shards fails at once, saying how to use local data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from .registry import DatasetSpec, get_dataset_spec

__all__ = ["DATA_ENV", "DataError", "DatasetUnavailableError", "HUB", "SplitSource", "resolve_data_root",
           "split_source"]

DATA_ENV = "CONVNEXT_REPORT_DATA"
HUB = "hub"  #: pass ``data_dir="hub"`` to read from the hub even when $CONVNEXT_REPORT_DATA is set


class DatasetUnavailableError(UserError, RuntimeError):
    """The hub could not serve a dataset's shards (offline and not cached, unreachable, not there)."""


class DataError(UserError, ValueError):
    """A data file does not hold what its dataset needs (a column, rows, valid labels or images); the
    message names the file and what is expected."""


def resolve_data_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local data root, or ``None`` for the hub.

    ``data_dir`` wins over ``$CONVNEXT_REPORT_DATA``; a root that does not exist is a
    :class:`FileNotFoundError` (never a silent fall-back to the hub).
    """
    value = data_dir if data_dir is not None else (os.environ.get(DATA_ENV) or None)
    if value is None or str(value) == HUB:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        origin = "data_dir" if data_dir is not None else f"${DATA_ENV}"
        raise FileNotFoundError(
            f"data folder {root} (from {origin}) does not exist: set {DATA_ENV} or pass data_dir= "
            f"to the folder holding the parquet datasets (e.g. ../shared/data), or data_dir='{HUB}' "
            "to download from the Hugging Face hub"
        )
    return root.resolve()


@dataclass(frozen=True)
class SplitSource:
    """One split of one dataset: its parquet shards, from a local root or (``root is None``) the hub."""

    spec: DatasetSpec
    split: str  #: "train" or "test"
    root: Path | None  #: data root; ``None``: the hub
    files: tuple[Path, ...]  #: parquet shards, sorted

    @property
    def split_name(self) -> str:
        """The split's name in the files / on the hub (e.g. "valid", "test")."""
        return self.spec.split_name(self.split)

    def describe(self) -> str:
        """Where the shards come from: the local folder, or ``hub:<id>[<split>]``."""
        return f"hub:{self.spec.hub_id}[{self.split_name}]" if self.root is None else str(self.files[0].parent)

    def row_counts(self) -> list[int]:
        """Rows per shard, from the footers; a shard that is not parquet, lacks (the type of) the image
        or label column or has no rows is a :class:`DataError`."""
        return [self._shard_rows(f) for f in self.files]

    def _shard_rows(self, file: Path) -> int:
        spec, where = self.spec, f"{self.spec.name} {self.split} split: {file}"
        try:
            shard = pq.ParquetFile(file)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{where} cannot be read as parquet ({err}): re-download or replace it") from err
        schema, expected = shard.schema_arrow, f"as in {spec.hub_id}'s parquet files; re-download or replace it"
        for column, kind, fits in ((spec.image_column, "encoded images (struct<bytes, path>)", _is_image),
                                   (spec.label_column, "integer class ids", pa.types.is_integer)):
            if column not in schema.names:
                raise DataError(f"{where} has no column {column!r} (it has {', '.join(schema.names)}): "
                                f"expected {column!r} with {kind}, {expected}")
            if not fits(schema.field(column).type):
                raise DataError(f"{where}: column {column!r} holds {schema.field(column).type}: expected {kind}, "
                                f"{expected}")
        if shard.metadata.num_rows == 0:
            raise DataError(f"{where} has no rows: expected {spec.name} images with labels, {expected}")
        return shard.metadata.num_rows

    def file_of_row(self, row: int) -> tuple[str, int]:
        """(shard, row within it) of split row ``row``."""
        start = 0
        for f, n in zip(self.files, self.row_counts()):
            if row < start + n:
                return str(f), row - start
            start += n
        return str(self.files[-1]), row - start

    def load(self) -> pa.Table:
        """The split's image and label columns (the images left encoded: ``struct<bytes, path>``)."""
        columns = [self.spec.image_column, self.spec.label_column]
        return pa.concat_tables([pq.read_table(f, columns=columns) for f in self.files])

    def label_names(self) -> list[str] | None:
        """The label column's ``ClassLabel`` names, from the schema (no image is read)."""
        return _schema_label_names(pq.read_schema(self.files[0]), self.spec.label_column)


def split_source(dataset: str | DatasetSpec, split: str, data_dir: str | os.PathLike | None = None) -> SplitSource:
    """Locate ``split`` ("train"/"test") of ``dataset``: its shards must exist."""
    spec = get_dataset_spec(dataset)
    name = spec.split_name(split)
    root = resolve_data_root(data_dir)
    folder = root / spec.local_subdir if root is not None else _hub_folder(spec, name)
    files = tuple(sorted(folder.glob(f"{name}-*.parquet")))
    if not files and root is None:
        raise DatasetUnavailableError(f"{spec.name}: the hub's {spec.hub_id} holds no {_hub_pattern(spec, name)}. "
                                      f"{_LOCAL}")
    if not files:
        what = "folder" if not folder.is_dir() else f"files {name}-*.parquet in folder"
        raise FileNotFoundError(
            f"{spec.name}: {what} {folder} not found under the data root {root}. Put the parquet "
            f"shards of {spec.hub_id} there, set {DATA_ENV} or pass data_dir= to a folder that "
            f"holds {spec.local_subdir}/, or pass data_dir='{HUB}' to read from the hub"
        )
    return SplitSource(spec, split, root, files)


_LOCAL = f"Point at local data: set {DATA_ENV} (or pass data_dir=) to a folder holding the parquet shards, e.g. " \
         "../shared/data"


def _hub_pattern(spec: DatasetSpec, split_name: str) -> str:
    """The hub repository's shards of a split: ``<last folder of local_subdir>/<split>-*.parquet``."""
    return f"{spec.local_subdir.rsplit('/', 1)[-1]}/{split_name}-*.parquet"


def _hub_folder(spec: DatasetSpec, split_name: str) -> Path:
    """The folder holding the split's shards in the Hugging Face cache, downloaded there first when online."""
    from huggingface_hub import constants, snapshot_download  # only the hub needs it

    pattern = _hub_pattern(spec, split_name)
    try:
        snapshot = snapshot_download(spec.hub_id, repo_type="dataset", allow_patterns=[pattern])
    except Exception as err:  # offline and not cached, no network, DNS, timeouts, hub errors
        why = ("offline mode is on (HF_HUB_OFFLINE) and they are not in the cache (to download them, go online: "
               "unset it)" if constants.HF_HUB_OFFLINE else
               "the hub cannot be reached (to read a copy in the Hugging Face cache, set HF_HUB_OFFLINE=1)")
        detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise DatasetUnavailableError(f"{spec.name}: no local data folder is set, and the Hugging Face hub cannot "
                                      f"serve {spec.hub_id}'s {pattern}: {why} ({detail}). {_LOCAL}") from None
    return Path(snapshot) / pattern.split("/")[0]


def _is_image(kind: pa.DataType) -> bool:
    """An encoded image column: ``struct<bytes, path>`` (``datasets.Image`` in parquet)."""
    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


def _schema_label_names(schema: pa.Schema, column: str) -> list[str] | None:
    """``ClassLabel`` names of ``column`` from the ``huggingface`` metadata a hub export writes."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        feature = json.loads(raw)["info"]["features"][column]
    except (ValueError, KeyError, TypeError):
        return None
    names = feature.get("names") if isinstance(feature, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else None

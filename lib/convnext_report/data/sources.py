"""Where a split's encoded images come from: a local parquet folder or the Hugging Face hub.

The data root is, in order: the ``data_dir`` argument, ``$CONVNEXT_REPORT_DATA``, else the hub
(``data_dir="hub"`` forces the hub). A local root holds ``<root>/<spec.local_subdir>/<split>-*.parquet``
in the hub's schema, read with pyarrow alone (labels from the label column, class names from the
``ClassLabel`` in the schema's ``huggingface`` metadata), so local data needs no ``datasets``
package. The hub is read with ``datasets.load_dataset(spec.hub_id, split=...)``; ``datasets`` is
imported only on that path (it takes seconds to import and a machine may not have it). A bad shard is a
:class:`DataError` naming it; a hub that cannot serve the data fails at once, saying how to use local data.
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

__all__ = ["DATA_ENV", "DataError", "DatasetUnavailableError", "HUB", "SplitData", "SplitSource", "hub_offline",
           "resolve_data_root", "split_source"]

DATA_ENV = "CONVNEXT_REPORT_DATA"
HUB = "hub"  #: pass ``data_dir="hub"`` to read from the hub even when $CONVNEXT_REPORT_DATA is set
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class DatasetUnavailableError(UserError, RuntimeError):
    """The hub could not serve a dataset (no ``datasets`` package, offline and not cached, unreachable)."""


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


def hub_offline() -> bool:
    """Whether Hugging Face is in offline mode (environment or ``datasets.config``)."""
    if any(os.environ.get(k, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for k in _OFFLINE_ENV):
        return True
    try:
        import datasets  # only the hub needs it: see the module docstring
    except ImportError:
        return False

    return bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))


@dataclass(frozen=True)
class SplitData:
    """A split's columns as an arrow table (the image column left encoded: ``struct<bytes, path>``)."""

    table: pa.Table
    label_names: list[str] | None  #: the label column's ``ClassLabel`` names, if known
    fingerprint: str | None = None  #: the hub dataset's fingerprint (its cache key); None for local files

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)


@dataclass(frozen=True)
class SplitSource:
    """One split of one dataset, local (``files``) or on the hub (``root is None``)."""

    spec: DatasetSpec
    split: str  #: "train" or "test"
    root: Path | None  #: data root; ``None``: the hub
    files: tuple[Path, ...] = ()  #: local parquet shards, sorted

    @property
    def is_hub(self) -> bool:
        return self.root is None

    @property
    def split_name(self) -> str:
        """The split's name in the files / on the hub (e.g. "valid", "test")."""
        return self.spec.split_name(self.split)

    def describe(self) -> str:
        """Human-readable origin: the parquet folder, or ``hub:<id>[<split>]``."""
        if self.is_hub:
            return f"hub:{self.spec.hub_id}[{self.split_name}]"
        return str(self.files[0].parent)

    def row_counts(self) -> list[int]:
        """Rows per local shard, from the footers; a shard that is not parquet, lacks (the type of) the image
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
        """(source file, row within it) of split row ``row``; the hub split for hub sources."""
        if self.is_hub:
            return self.describe(), row
        start = 0
        for f, n in zip(self.files, self.row_counts()):
            if row < start + n:
                return str(f), row - start
            start += n
        return str(self.files[-1]), row - start

    def load(self) -> SplitData:
        """The split's image and label columns; local shards through pyarrow, the hub through ``datasets``."""
        if self.is_hub:
            return _load_hub(self.spec, self.split_name)
        columns = [self.spec.image_column, self.spec.label_column]
        table = pa.concat_tables([pq.read_table(f, columns=columns) for f in self.files])
        return SplitData(table, self.label_names())

    def label_names(self) -> list[str] | None:
        """The label column's ``ClassLabel`` names (local: from the parquet schema, no image is read)."""
        if self.is_hub:
            import datasets  # only the hub needs it: see the module docstring

            try:
                features = datasets.load_dataset_builder(self.spec.hub_id).info.features
            except Exception as err:  # offline, no network, not cached
                raise _hub_error(self.spec, err) from err
            return list(getattr(features[self.spec.label_column], "names", None) or []) or None
        return _schema_label_names(pq.read_schema(self.files[0]), self.spec.label_column)


def split_source(
    dataset: str | DatasetSpec, split: str, data_dir: str | os.PathLike | None = None
) -> SplitSource:
    """Locate ``split`` ("train"/"test") of ``dataset``; local files are checked to exist."""
    spec = get_dataset_spec(dataset)
    name = spec.split_name(split)
    root = resolve_data_root(data_dir)
    if root is None:
        _check_hub(spec)
        return SplitSource(spec, split, None)
    folder = root / spec.local_subdir
    files = tuple(sorted(folder.glob(f"{name}-*.parquet")))
    if not files:
        what = "folder" if not folder.is_dir() else f"files {name}-*.parquet in folder"
        raise FileNotFoundError(
            f"{spec.name}: {what} {folder} not found under the data root {root}. Put the parquet "
            f"shards of {spec.hub_id} there, set {DATA_ENV} or pass data_dir= to a folder that "
            f"holds {spec.local_subdir}/, or pass data_dir='{HUB}' to read from the hub"
        )
    return SplitSource(spec, split, root, files)


def _is_image(kind: pa.DataType) -> bool:
    """An encoded image column: ``struct<bytes, path>`` (``datasets.Image`` in parquet)."""
    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


def _check_hub(spec: DatasetSpec) -> None:
    """Fail at once when the hub cannot serve ``spec``: ``datasets`` missing, or online and the hub
    unreachable (offline, ``datasets`` reads its cache and says at once when the data is not there)."""
    try:
        import datasets  # noqa: F401  (only the hub needs it: see the module docstring)
    except ImportError as err:
        raise _hub_error(spec, err, "reading it needs the `datasets` package, which is not installed "
                                    "(pip install datasets)") from None
    if hub_offline():
        return
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(spec.hub_id, timeout=10)
    except Exception as err:  # no network, DNS, timeouts, hub errors
        raise _hub_error(spec, err) from None


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


def _load_hub(spec: DatasetSpec, split_name: str) -> SplitData:
    import datasets  # only the hub needs it: see the module docstring

    try:
        ds = datasets.load_dataset(spec.hub_id, split=split_name)
    except Exception as err:  # ConnectionError, offline cache miss, hub errors
        raise _hub_error(spec, err) from err
    ds = ds.cast_column(spec.image_column, datasets.Image(decode=False))
    if getattr(ds, "_indices", None) is not None:  # a selected/shuffled view: materialise its rows
        ds = ds.flatten_indices()
    feature = ds.features[spec.label_column]
    names = list(getattr(feature, "names", None) or []) or None
    return SplitData(ds.data.table, names, ds._fingerprint)


def _hub_error(spec: DatasetSpec, err: Exception, why: str | None = None) -> DatasetUnavailableError:
    """One line: why the hub cannot serve ``spec``, and how to point at local data (or reach the hub)."""
    if why is None and hub_offline():
        why = ("offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and it is not in the cache (to download "
               "it, go online: unset them)")
    elif why is None:
        why = "the hub cannot be reached (to read a copy in the Hugging Face cache, set HF_HUB_OFFLINE=1)"
    detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return DatasetUnavailableError(
        f"{spec.name}: no local data folder is set, and the Hugging Face hub cannot serve {spec.hub_id}: {why} "
        f"({detail}). Point at local data: set {DATA_ENV} (or pass data_dir=) to a folder holding "
        f"{spec.local_subdir}/*.parquet, e.g. ../shared/data")

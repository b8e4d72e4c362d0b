"""ConvNeXt on small images: the library behind a reproducible Jupyter Book.

>>> import convnext_report as cr
>>> model = cr.build_model("convnextv2_atto", num_classes=100)
>>> run = cr.train(cr.TrainConfig(dataset="cifar100", epochs=30))      # writes a run folder
>>> cr.load_run(run.path).eval.top1

The core, one job per module (none of them imports :mod:`convnext_report.report`):

- :mod:`.config`: ``TrainConfig``, every setting of a run, shared by notebooks and the CLI
- :mod:`.models`: ConvNeXt V1/V2 through timm, DyT, attention head, stem stride, pretrained weights
- :mod:`.complexity`: parameters, MACs and per-stage shapes
- :mod:`.data`: dataset registry, decoding cache, device-side augmentation, loaders
- :mod:`.optim`: parameter groups (timm's), optimisers and per-iteration schedules
- :mod:`.engine`: ``train_one_epoch`` and ``evaluate``
- :mod:`.parts`, :mod:`.runfolder`, :mod:`.training`: a run's parts, its folder and resume, its epoch loop
- :mod:`.frozen`: the frozen-backbone fast path (features computed once)
- :mod:`.evaluation`, :mod:`.selection`, :mod:`.figures`: predictions, per-epoch history and best epoch, figures
- :mod:`.packing`, :mod:`.worker`: several runs at once, each in its own process
- :mod:`.atomic`, :mod:`.environment`, :mod:`.distributed`, :mod:`.errors`: file writes, provenance, DDP, errors

:mod:`convnext_report.report` is the book's layer on top (chapters, records, tables, glue).
"""

import warnings

# timm imports huggingface_hub, whose tqdm.auto warns in a notebook kernel without ipywidgets; the
# warning would put an installation-dependent path into every notebook that imports this package.
warnings.filterwarnings("ignore", message="IProgress not found")

from .complexity import count_macs, count_parameters  # noqa: E402  (after the filter)
from .config import TrainConfig, load_config  # noqa: E402
from .data import load_split  # noqa: E402
from .engine import evaluate, train_one_epoch  # noqa: E402
from .evaluation import EvalResult  # noqa: E402
from .models import build_model  # noqa: E402
from .runfolder import Run, load_run  # noqa: E402
from .training import train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "EvalResult", "Run", "TrainConfig", "build_model", "count_macs", "count_parameters", "evaluate", "load_config",
    "load_run", "load_split", "train", "train_one_epoch",
]

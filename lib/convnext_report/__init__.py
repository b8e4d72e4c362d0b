"""ConvNeXt on small images: the library behind a reproducible Jupyter Book.

>>> import convnext_report as cr
>>> model = cr.build_model("convnextv2_atto", num_classes=100)
>>> run = cr.train(cr.TrainConfig(dataset="cifar100", epochs=30))      # writes a run folder
>>> cr.load_run(run.path).eval.top1

The core, one job per module (ARCHITECTURE.md lists them; none imports :mod:`convnext_report.report`,
the book's layer on top: chapters, records, tables, glue).
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

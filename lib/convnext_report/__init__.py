"""ConvNeXt on small images: models, data, training and reporting for the book.

Modules, one job each:

- :mod:`convnext_report.config`: the typed run configuration shared by notebooks and CLI
- :mod:`convnext_report.models`: ConvNeXt V1/V2 through timm, DyT, attention head, pretrained loading
- :mod:`convnext_report.complexity`: parameters, MACs and per-stage shapes
- :mod:`convnext_report.data`: dataset registry, decoding cache, device-side augmentation, loaders
- :mod:`convnext_report.optim`: parameter groups, optimisers and per-iteration schedules
- :mod:`convnext_report.engine`: ``train_one_epoch`` and ``evaluate``
- :mod:`convnext_report.runner`: a whole run with its run folder (resume, early stopping, records)
- :mod:`convnext_report.figures` / :mod:`convnext_report.reporting`: what the book shows
"""

__version__ = "0.1.0"

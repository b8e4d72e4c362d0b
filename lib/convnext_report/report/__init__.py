"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it.

- :mod:`.chapter`: a chapter's parameters, smoke switch, runs and record
- :mod:`.paths`: where records, runs and backbones live (environment variables override)
- :mod:`.banners`: the boxes saying where and in which configuration a page ran
- :mod:`.sources`: the three sources' numbers as data
- :mod:`.recipes`: the training recipes of chapters 6 and 7, and grids of runs
- :mod:`.backbones`: the transfer chapters' backbone (export, find, timm ids)
- :mod:`.tables`: runs as tables (seed mean ± std, pivots, stage shapes)
- :mod:`.results`: headline rows, the results and status tables, glue
- :mod:`.alpha_log`: DyT alpha per epoch
- :mod:`.figures`: the explanatory figures (roadmap, blocks, DyT, GRN, ours against the sources)
"""

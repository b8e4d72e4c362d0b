"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it.

- :mod:`.chapter`: a chapter's parameters, smoke switch, runs and record
- :mod:`.parameters`: parameters from a notebook (namespace, passed ``-p`` values, file defaults)
- :mod:`.designs`: each training chapter's runs as data, and the smoke reductions
- :mod:`.runner`: one run, from the result store or trained (training switch, deadline)
- :mod:`.store`, :mod:`.keys`: the committed result store and a run's key
- :mod:`.plan`, :mod:`.estimate`: the book's GPU budget and its assumptions
- :mod:`.paths`, :mod:`.switches`: where records, runs, backbones and the store live; environment switches
- :mod:`.banners`: the boxes saying where and in which configuration a page ran
- :mod:`.sources`: the three sources' numbers as data
- :mod:`.recipes`: the training recipes of chapters 6 and 7, and grids of runs
- :mod:`.backbones`: the transfer chapters' backbone (export, find, timm ids)
- :mod:`.tables`: runs as tables (seed mean ± std, pivots, stage shapes)
- :mod:`.results`: headline rows, the results and status tables, glue
- :mod:`.figures`: the explanatory figures (roadmap, blocks, DyT, GRN, ours against the sources)
"""

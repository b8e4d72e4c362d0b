"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it.

- :mod:`.chapter`: a chapter's parameters, smoke switch, runs and record
- :mod:`.parameters`: parameters from a notebook (namespace, passed ``-p`` values, file defaults)
- :mod:`.designs`: each training chapter's runs as data, and the smoke reductions
- :mod:`.runner`: a chapter's runs, from the result store or trained (packed on a GPU; training switch, deadline)
- :mod:`.records`: a chapter's record (its runs, where they were trained, its headline rows)
- :mod:`.store`, :mod:`.keys`: the committed result store and a run's key
- :mod:`.plan`, :mod:`.estimate`: the book's GPU budget and its assumptions
- :mod:`.paths`, :mod:`.switches`: where records, runs, backbones and the store live; environment switches
- :mod:`.banners`: the boxes saying where and in which configuration a page ran
- :mod:`.sources`: the three sources' numbers as data
- :mod:`.recipes`: the training recipes of chapters 6 and 7, and grids of runs
- :mod:`.backbones`: the transfer chapters' backbone (export, find, timm ids)
- :mod:`.tables`: runs as tables (seed mean ± std, peeking, pivots, stage shapes, DyT alphas)
- :mod:`.results`: headline rows, the results and status tables, glue
- :mod:`.figures`, :mod:`.performance`: the explanatory figures; the Performance page from the benchmark's JSON
"""

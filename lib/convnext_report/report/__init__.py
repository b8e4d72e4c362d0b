"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it.

- :mod:`.chapter`: a chapter's parameters (papermill's), runs, banner, paragraphs and record
- :mod:`.experiments`, :mod:`.recipes`: each chapter's parameters and its runs as data; the recipes of chapters 6-7
- :mod:`.runner`: a chapter's runs, from the result store or trained (packed on a GPU) and stored
- :mod:`.store`: the result store, a run's key, where the book's files live (local and committed layers), publish
- :mod:`.plan`: the book's GPU budget, every estimate's assumptions, what runs measured, a window's deadline
- :mod:`.commands`: ``python -m convnext_report plan``, ``publish``, ``runs`` and ``runs compare``
- :mod:`.backbones`, :mod:`.claims`: the transfer chapters' backbone; the three sources' numbers as data
- :mod:`.tables`, :mod:`.results`, :mod:`.glue`: one table format for every page; headline rows, their prose, the
  results and status tables and the box at a glance; glue
- :mod:`.diagrams`, :mod:`.performance`: the explanatory figures; the Performance page from the benchmark's JSON
"""

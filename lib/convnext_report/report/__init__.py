"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it.

- :mod:`.chapter`, :mod:`.parameters`: a chapter's parameters (papermill's), runs, banner, paragraphs and record
- :mod:`.experiments`, :mod:`.recipes`: each training chapter's runs as data; the recipes of chapters 6 and 7
- :mod:`.runner`, :mod:`.store`: a chapter's runs from the result store, or trained and stored; where files live
- :mod:`.publish`, :mod:`.plan`: copying what a chapter used into the repository; the book's GPU budget
- :mod:`.commands`: ``python -m convnext_report plan``, ``publish``, ``runs`` and ``runs compare``
- :mod:`.backbones`, :mod:`.claims`: the transfer chapters' backbone; the three sources' numbers as data
- :mod:`.tables`, :mod:`.results`, :mod:`.glue`: one table format for every page; headline rows, their prose, the
  results and status tables and the box at a glance; glue
- :mod:`.diagrams`, :mod:`.performance`: the explanatory figures; the Performance page from the benchmark's JSON
"""

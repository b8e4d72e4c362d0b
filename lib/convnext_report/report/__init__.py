"""The book's layer: everything that exists only for this report, on top of the core library.

It imports the core (:mod:`convnext_report`); no core module imports it. ARCHITECTURE.md lists its modules and
follows a parameter to the optimiser and a run to the result store.
"""

"""Reports: metrics, figures, task reports, the model study's tables and classic baselines.

Submodules are imported by name; this package imports none of them (the workflow reads
``deepsky.reports.study`` while planning, without Keras or matplotlib).
"""

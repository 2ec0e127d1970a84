"""Learning: tasks, inputs, models, training, model files, inference, uncertainty, transfer.

Submodules are imported by name (``from deepsky.learn import train``); this package imports none of
them, so importing it costs nothing (Keras is imported only by the modules that need it).
"""

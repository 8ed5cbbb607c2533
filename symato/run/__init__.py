"""One training run, start to end: its settings contract (``settings``), the run grid a
config describes (``grid``), the trainer (``train``, with the precision decision in
``precision`` and its device-side step statistics in ``stepstats``), model files
(``checkpoint``), held-out evaluation (``evaluate``), sampling and diacritic restoration
(``generate``) and export for the ``rwkv`` package (``export``).
"""

"""After the runs: the results tables (``collect``), scaling-law fits (``fit``), the
data behind each figure (``figures``; the drawing itself is in the workflow's
``workflow/scripts/``) and the Markdown summary (``summary``).
"""

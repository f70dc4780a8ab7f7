"""Collection settings for the doctests of src/longtail (``--doctest-modules``)."""

import importlib.util

# the torchmetrics adapters import torchmetrics, an optional package: no doctest without it
collect_ignore = []
if importlib.util.find_spec("torchmetrics") is None:
    collect_ignore.append("src/longtail/metrics_torchmetrics.py")

"""Collection settings for the doctests of src/longtail (``--doctest-modules``)."""

import importlib.util

# Modules that import an optional package at module level: no doctest collection without it
# (their own tests skip through pytest.importorskip; CI installs every extra).
_OPTIONAL = {
    "src/longtail/metrics_torchmetrics.py": "torchmetrics",
    "src/longtail/integrations/lightning.py": "lightning",
    "src/longtail/integrations/transformers.py": "transformers",
}
collect_ignore = [path for path, pkg in _OPTIONAL.items() if importlib.util.find_spec(pkg) is None]

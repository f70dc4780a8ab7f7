"""Optional bridges to the frameworks users already train with.

Each submodule imports its framework lazily and is installed through an extra:

- :mod:`longtail.integrations.lightning` (``pip install longtail[lightning]``)
- :mod:`longtail.integrations.transformers` (``pip install longtail[transformers]``)

Importing :mod:`longtail` never imports any of them.
"""

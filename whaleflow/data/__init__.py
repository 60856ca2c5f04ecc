"""Data: reading photo folders (catalog), image decoding, and the synthetic fluke set.

Modules are imported directly (``from whaleflow.data.catalog import load_catalog``);
this package imports nothing eagerly so that ``whaleflow.data.*`` stays cheap to load.
"""

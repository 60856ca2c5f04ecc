"""whaleflow: identify individual animals in photos."""
__version__ = "0.1.0"

"""The Ray layer: the only place whaleflow touches Ray."""

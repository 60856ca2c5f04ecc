"""Models: backbones (timm + the compact net), the siamese pair head, embedding nets.

Modules register themselves by name (``HEADS``, timm's registry) when imported.
"""

"""Sample-quality metrics (FID and friends) and the feature networks they measure with.

Import the modules you need, e.g. ``facelib.metrics.inception`` (the standard FID network) or
``facelib.metrics.features`` (feature caching and a weight-free test network); nothing heavy is
imported here.
"""

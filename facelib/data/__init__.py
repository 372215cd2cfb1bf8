"""The data layer: get CelebA, parse its annotations, prepare a uint8 cache, feed tf.data.

    get_celeba(...)        celeba.py   download (gdown + MD5) | zip | folder | Drive path
    prepare(...)           prepare.py  crop + antialiased resize -> a cache folder, written once
    FaceCache.open(...)    cache.py    the cache as memmaps (images, attributes, partition)
    make_dataset(...)      pipeline.py deterministic, resumable tf.data batches in [-1, 1]
    load_images(...)       sources.py  any image source (cache, CelebA folder, plain folder)
    sample_cache(...)      sample.py   the bundled 500-face sample, prepared once

Submodules are imported on use, so ``import facelib.data`` stays cheap (no TensorFlow).
"""

from facelib.data.cache import FaceCache
from facelib.data.celeba import ATTRIBUTE_NAMES, AttributeTable, get_celeba, parse_attributes

__all__ = ["ATTRIBUTE_NAMES", "AttributeTable", "FaceCache", "get_celeba", "parse_attributes"]

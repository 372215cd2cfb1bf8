"""facelib: synthetic face generation on CelebA with TensorFlow/Keras 3.

The one interface every analysis uses is a trained run folder::

    run = facelib.load_run("runs/dcgan64")
    faces = run.generate(16, seed=0)            # uint8 NHWC
"""

from facelib.config import Config, preset
from facelib.errors import FacelibError

__version__ = "0.1.0"
__all__ = ["Config", "FacelibError", "load_run", "preset", "__version__"]


def load_run(path, checkpoint: str = "latest"):
    """Open a run folder written by ``python -m facelib train`` (see :class:`facelib.run.Run`)."""
    from facelib.run import Run

    return Run.load(path, checkpoint=checkpoint)

"""facelib: synthetic face generation on CelebA with TensorFlow/Keras 3.

The one interface every analysis uses is a trained run folder::

    run = facelib.load_run("runs/dcgan64")          # or "runs/dcgan64@best"
    faces = run.generate(16, seed=0)                # uint8 NHWC
"""

from facelib.config import Config, conditional_preset, preset
from facelib.errors import FacelibError

__version__ = "0.1.0"
__all__ = ["Config", "FacelibError", "conditional_preset", "load_run", "preset", "__version__"]


def load_run(spec, checkpoint: str | None = None):
    """Open a run folder written by ``python -m facelib train`` (see
    :class:`facelib.run.interface.Run`): a path or ``RUN@CKPT``; ``checkpoint`` (latest, best,
    step-NNNNNNNN or a checkpoint folder) overrides the spec's.

    Imported here on first use: ``import facelib`` stays light (no TensorFlow) so that the
    CLI's ``--help`` and the notebooks' first cell answer at once.
    """
    from facelib.run.interface import open_run

    return open_run(spec, checkpoint)

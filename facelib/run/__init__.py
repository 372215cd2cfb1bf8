"""The run layer: a run folder as one typed object, and the generator interface read from it.

    folder.py       RunFolder: the layout (config, data, prior, checkpoints, samples, metrics log)
    checkpoints.py  atomic checkpoints of a whole GAN under RUN/checkpoints
    train.py        config + data + run folder -> a trained, resumable run
    interface.py    Run: a checkpoint's generator behind the narrow interface analyses use
    feature_network.py  the pretrained network config.d_features names, loaded for D
"""

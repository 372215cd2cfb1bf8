"""GAN training: the keras.Model, its losses and augmentation, checkpoints, callbacks, driver."""

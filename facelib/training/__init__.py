"""GAN training: the keras.Model, its losses and augmentation, and the callbacks fit() uses."""

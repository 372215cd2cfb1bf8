"""Network architectures: the DCGAN pair (unconditional and attribute-conditional)."""

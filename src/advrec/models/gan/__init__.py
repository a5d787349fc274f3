"""GAN-based recommenders (IRGAN, CFGAN): a generator and a discriminator trained adversarially."""

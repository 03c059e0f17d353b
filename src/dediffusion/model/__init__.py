"""The method (paper Fig. 2): image backbone, attentional pooler, Gumbel text head, tokenizer,
decoder adapters, the diffusion math and the autoencoder that joins them."""

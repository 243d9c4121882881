"""Training of the segmentation network: the label-driven synthetic image generator. Used by scripts and
benchmarks only; the product (everything but ``simulation``) never imports it."""

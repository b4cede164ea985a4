"""Evaluation of text-to-audio models: distribution metrics (FD, FAD, KL, IS, text–audio score), paired
reconstruction metrics, attribute adherence on the built-in dataset, and the embedding backbones they run on."""

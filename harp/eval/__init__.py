"""Evaluation: lm-eval tasks, perplexity and the speed benchmark."""

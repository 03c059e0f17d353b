"""Evaluation: the probe judge, reconstruction metrics, paired statistics, reports, inversion, attribution."""

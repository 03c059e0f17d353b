"""Inputs: image files and folders, WebDataset shards, user prompts, and the embedded world."""

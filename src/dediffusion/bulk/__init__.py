"""Bulk encoding: any number of images into JSONL that survives being killed, one or many processes."""

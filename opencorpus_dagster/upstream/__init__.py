"""Reading what is not ours: fetching over HTTP (with its URL policy), decompression, and the
limits every reader enforces on upstream files and records.
"""

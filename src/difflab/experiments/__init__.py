"""Measurements that back a choice in the pipeline, one library function per question (no CLI, no prose).

- part_a/: Part A's editing algorithms (spacing: leading vs trailing timesteps for chains from pure noise).
"""

"""Whole runs: the pipeline (one model through every stage) and the study (several models, one front).
"""

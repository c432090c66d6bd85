"""Experiments: the paper's figures and tables, and comparisons on a user's own task.

Nothing here is imported by ``import losslab``; these modules need the ``experiments`` extra.
"""

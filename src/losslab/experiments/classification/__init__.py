"""Classification comparisons: tasks × losses × seeds, a crash-safe results store, statistics.

    >>> from losslab.experiments.classification import compare
    >>> result = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=3,
    ...                  db="results.sqlite")                       # doctest: +SKIP
    >>> print(result.markdown())                                    # doctest: +SKIP
"""

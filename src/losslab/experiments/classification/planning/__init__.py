"""What to train: the named tasks, their data and splits, pretrained bodies."""

"""One run: the training loop, optimizers and schedules, and the metrics a run is scored on."""

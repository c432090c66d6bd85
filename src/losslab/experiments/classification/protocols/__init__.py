"""How runs are chosen: the tuned protocol (learning-rate sweeps and the selection rule), successive halving, and seeds until the answer is precise."""

"""A training run: the session, its Keras callbacks, checkpoints, optimizers and schedules."""

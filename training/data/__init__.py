"""Images in, tf.data pipelines out: scanning, decoding, splitting, augmentation, the built-in sample."""

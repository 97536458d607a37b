"""The command line: ``python main.py train | config | predict | check | overfit | lr-find``."""

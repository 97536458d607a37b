"""The settings panels of the main window, one per config section."""

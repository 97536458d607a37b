"""The window's logic without its widgets: the config being edited, the split it plans,
the one job that runs. Each is a plain QObject the window wires to its widgets."""

"""The engine in a child process: the protocol, the child entry points and the client that spawns them (no Qt)."""

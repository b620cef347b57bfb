"""Action: executors behind one port, rollback points, verification."""

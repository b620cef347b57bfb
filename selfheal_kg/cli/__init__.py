"""The ``selfheal`` command line: one module per subcommand, composed in ``main``."""

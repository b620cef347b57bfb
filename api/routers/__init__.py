"""One router per resource; ``api.main`` composes them."""

"""Pure types and rules of Herald: no I/O, no imports from store/, api/ or providers/."""

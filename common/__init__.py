"""Code shared by the three services: validated configs, user-facing errors, hashing."""

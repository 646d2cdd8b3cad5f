"""App state in plain Python: no Qt, no VisPy (checked by the import-linter contracts)."""

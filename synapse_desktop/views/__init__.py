"""VisPy adapters: one-way from the models to visuals that are created once (no Qt widgets)."""

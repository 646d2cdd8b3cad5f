"""Qt widgets of the app: they write to the models and mirror them (signals blocked)."""

"""Scene geometry without VisPy: layout of the planes, texture atlas, picking, colour scales."""

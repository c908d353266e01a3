"""pathlib_core: critical neural pathways and the attributions computed through them."""

"""Side-by-side benchmarks of ott_fast against OTT-JAX and POT (``python -m benchmarks [--quick]``)."""

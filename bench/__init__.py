"""Side-by-side benchmarks of taskhub against its stock peers (see README.md)."""

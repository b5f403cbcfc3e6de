"""Search by embedding: an exact-or-ANN index over normalised vectors and its Parquet file."""

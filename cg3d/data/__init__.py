"""Data: mesh sources, manifest, point sampling, captions, Parquet shards, torch datasets."""

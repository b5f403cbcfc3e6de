"""Using a trained model outside the pipeline: loading by path or MLflow URI, embedding shape
files, classifying them, searching an index, and the local search page."""

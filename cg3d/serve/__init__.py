"""`cg3d serve`: a local web page that searches an embeddings index by text, image or shape file."""

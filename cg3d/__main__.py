"""`python -m cg3d`: what the Snakemake rules call (same as the `cg3d` console script)."""

from cg3d.cli import main

main()

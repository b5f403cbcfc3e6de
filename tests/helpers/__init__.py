"""What the tests share: small datasets in real layouts, configs and workflow runs, a trained
model's fixtures, a live search page, and the import closure of each conda env's rules."""

"""pathbook: runs the notebooks with papermill and builds the Jupyter Book."""

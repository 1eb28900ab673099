"""Instructions as people write them: parsing (parse.py) and resolving them on segmented instances (resolve.py)."""

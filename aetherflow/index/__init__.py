"""The repository index: files → chunks → dense and sparse vectors → store → search.

Heavy dependencies (tree-sitter, fastembed, Qdrant) are imported inside the modules that use them, never here.
"""

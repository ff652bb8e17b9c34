"""The model gateway: the only package that knows about providers, LiteLLM and the local model.

Import the concrete pieces from their modules (`aetherflow.llm.gateway`, ...); this package imports nothing heavy.
"""

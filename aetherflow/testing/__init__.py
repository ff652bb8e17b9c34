"""Fakes that tests and benchmarks share: the scripted OpenAI-compatible server and scripted Settings.

Importing this package is cheap (stdlib only); LiteLLM is never imported here.
"""

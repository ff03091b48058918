"""Fakes for tests, one module per platform with its assertion helpers.

`core` fakes our own interfaces (a settable clock, a recording destination) and fills a real
store; `slack` and `discord` are local servers as strict as those platforms' APIs.
"""

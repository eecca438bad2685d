"""Units every layer shares: durations, database URLs and the defaults of a target profile.

Pure functions and constants with no Qt, engine or agent import, so the engine, the agent, the
settings and both front ends read a duration or show a URL the same way.
"""

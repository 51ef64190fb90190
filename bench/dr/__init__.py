"""Disaster-recovery benchmark: serving through health-checked DNS while a server, a gateway, a site dies.

Run with ``python -m bench.dr`` (``make bench-dr``); ``--help`` lists the knobs.
"""

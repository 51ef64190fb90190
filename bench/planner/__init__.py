"""Planner benchmark: random chains, in-trees and layered DAGs against the whole bundled catalog.

Run with ``python -m bench.planner`` (or ``make bench``); ``--help`` lists the knobs.
"""

"""Replication benchmark: SeaweedFS → SeaweedFS on loopback, Stratus's copies against rclone's.

Run with ``python -m bench.replication`` (or ``make bench-replication``); ``--help`` lists the knobs.
"""

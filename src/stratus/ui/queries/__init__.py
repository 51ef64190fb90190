"""What the dashboard shows, as plain values read from the state database, ledger, records and registry.

Nothing here knows about HTTP or HTML, and nothing here writes: the web layer (:mod:`stratus.ui.app`)
only renders these values.
"""

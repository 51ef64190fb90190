"""Ray as a site's compute against the local executor: overhead per step and a 50-step fan-out."""

"""Kubernetes contexts as a site's compute: typed manifests, strict validation, one client per context.

Layers, bottom up: :mod:`.names` and :mod:`.nodes` (labels, names, what a provider's nodes are called),
:mod:`.render`, :mod:`.serving` and :mod:`.crds` (pure: config in, lightkube or CRD objects out),
:mod:`.validate` (official schemas offline, CRDs against their projects' typed models), :mod:`.bundle`
(a pipeline or a model across every context, written as YAML), and :mod:`.client` (apply, status, scale,
delete through lightkube). The runner's executor lives in :mod:`stratus.executors.kubernetes`.
"""

"""The cluster model: what a real cluster will do with the rendered objects.

Chart objects rendered from the upstream charts, the pods operators build from our custom
resources, Pod Security admission, NetworkPolicy semantics and the flows components declare.
Each modelled behaviour names its upstream source (repository, path, version).
"""

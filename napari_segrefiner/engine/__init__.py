"""The refinement engine: the run description, the one batch step and the instance, whole and HR pipelines
that yield typed records, with the geometry, composition and clean-up they share.
"""

"""The networks and what runs them: configurations, checkpoints, the registry of named models, the
:class:`~.refiner.Refiner` and its loader, the locked model cache, devices and threads.
"""

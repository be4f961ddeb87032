"""Discrete mask diffusion: the schedule and its maths (:mod:`.scheduler`) and the reverse loop (:mod:`.sampling`).

Pure torch; knows nothing of images, crops, files or models.
"""

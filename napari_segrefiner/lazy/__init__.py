"""Big arrays, lazily: :func:`~.refine.refine_lazy` scans, plans and builds a dask graph of batch and chunk
tasks; models per worker, clients and progress live in :mod:`.cluster`.
"""

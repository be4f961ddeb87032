"""What an annotator adds to a run: hints held by the refinement, review scores, re-runs of what changed
and the review queue.
"""

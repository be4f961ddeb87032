"""Learn from the annotator's corrections: pairs, decoder fine-tuning on a CPU, adapted models.

* :mod:`.pairs`, :mod:`.store`: a training pair per accepted object, kept in a
  :class:`PairStore` (one per result) and saved as a small training folder;
* :mod:`.review`: :func:`pairs_from_review` turns a review queue's accepted objects into pairs;
* :mod:`.learn`: :func:`iter_adapt` / :func:`adapt` fine-tune the base model's decoder on
  them, judged on held-out pairs;
* :mod:`.models`: adapted models in the user's model folder, loaded as ``"adapted:<name>"``.

No napari here: the widget runs :func:`iter_adapt` in its worker.
"""

from ..models.adapted import ADAPTED_PREFIX, AdaptedModel, adapted_folder, adapted_path, list_adapted
from .checks import MIN_PAIRS, split_pairs
from .learn import DEFAULT_LR, KEEP_TOLERANCE, adapt, iter_adapt
from .models import save_adapted
from .pairs import Pair, make_pair
from .result import STAGES, AdaptCancelled, AdaptRecord, AdaptResult
from .review import ReviewPairs, accepted_labels, pairs_from_review
from .store import PairStore

__all__ = [
    "ADAPTED_PREFIX",
    "DEFAULT_LR",
    "KEEP_TOLERANCE",
    "MIN_PAIRS",
    "STAGES",
    "AdaptCancelled",
    "AdaptRecord",
    "AdaptResult",
    "AdaptedModel",
    "Pair",
    "PairStore",
    "ReviewPairs",
    "accepted_labels",
    "adapt",
    "adapted_folder",
    "adapted_path",
    "iter_adapt",
    "list_adapted",
    "make_pair",
    "pairs_from_review",
    "save_adapted",
    "split_pairs",
]

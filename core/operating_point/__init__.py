"""Operating points (issue 18): from the training images' out-of-fold scores to the cut points that
meet an engineer's targets (review share; escapes, false rejects or their cost), one combined defect
score from both models, and the promised rates with their ranges. ``rates``, ``combine``, ``choose``
and ``point`` are pure (numpy / scikit-learn); ``service`` and ``cli`` reach the database."""

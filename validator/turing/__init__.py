"""The visual Turing test: a small web app in which experts tell real dermoscopic images from
synthetic ones, and the statistics a paper reports on their answers.

- :mod:`validator.turing.study`: a study's images, chosen and re-encoded once (same size, same
  PNG encoder settings, no metadata), and each rater's balanced, seeded order;
- :mod:`validator.turing.store`: SQLite (WAL) storage: studies are immutable, each answer is
  committed before the next image is sent;
- :mod:`validator.turing.stats`: accuracy (Wilson 95 % CI, exact binomial test against 50 %),
  sensitivity and specificity (synthetic = positive), accuracy by confidence, per-image fooled
  rates, Fleiss' kappa;
- :mod:`validator.turing.app`: the Starlette app (rater pages, admin pages with the token);
- :mod:`validator.turing.cli`: ``python -m validator turing serve|results``.
"""

"""Figures, tables and sentences that the chapters show: drawing and wording only.

Every number shown here is computed by the science modules (``pathway``, ``pruning``,
``linearity``, ``evaluation``, ``transfer`` ...); this package only turns results into a matplotlib
figure, a Markdown table or a sentence, so that a chapter shows its computation and calls one line
to draw it. One module per subject.
"""

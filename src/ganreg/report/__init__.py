"""Reports on finished runs: a self-contained HTML page per run (``ganreg report``) and a
side-by-side comparison of several runs (``ganreg compare``).

* :mod:`~ganreg.report.runinfo`  what a run directory holds, read without loading any network
* :mod:`~ganreg.report.figures`  matplotlib figures: metric curves, overlaid loss curves
* :mod:`~ganreg.report.html`     the HTML page (images embedded as base64 data URIs)
* :mod:`~ganreg.report.compare`  the comparison table and plot
"""

"""Evaluation: FID / KID / IS through torchmetrics, text-image alignment, reference statistics.

Every number is reported with its protocol (feature extractor and the sha256
of its weights, sample counts, split, resize, truncation, checkpoint step),
because FIDs computed under different protocols are not comparable
(reference §2.5, §5).

Modules, one job each:

* :mod:`~ganreg.metrics.cache`      where cached classifiers and statistics live, keys, hashes
* :mod:`~ganreg.metrics.classifier` the offline feature extractor: a small CNN trained on the real images
* :mod:`~ganreg.metrics.features`   feature extractors (classifier, Inception) behind one interface
* :mod:`~ganreg.metrics.fid`        FID / KID / IS from features, through torchmetrics
* :mod:`~ganreg.metrics.reference`  reference statistics of the real data (computed once, cached; user npz)
* :mod:`~ganreg.metrics.samples`    images generated from held-out captions, with their targets
* :mod:`~ganreg.metrics.alignment`  does the image show what the caption says (class, attributes)
* :mod:`~ganreg.metrics.evaluate`   ``ganreg eval``: one pass over generated images, results with their protocol
* :mod:`~ganreg.metrics.training`   evaluation during training: metrics.jsonl lines, keep-best, TensorBoard
* :mod:`~ganreg.metrics.tensorboard` optional TensorBoard logging
* :mod:`~ganreg.metrics.tsne`       t-SNE plots of text embeddings and image features
"""

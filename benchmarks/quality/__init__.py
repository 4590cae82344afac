"""The quality benchmark (``python -m benchmarks.quality``), one module per job:

- ``methods``: the method and dataset tables (each method's variant, ablations, code-faithful flag) and display names;
- ``presets``: ``Preset`` (every setting of one benchmark), ``PRESETS``, the runs of a preset in priority order,
  ``--set`` variants, and the model and training configs of one neural run;
- ``splits``: the fixed train/dev/test splits (``hpt_core.finetune.Splits``) of 20 Newsgroups and WOS-1k;
- ``neural``: HPT, its variants, ablations and fine-tuning through ``hpt_core.finetune.finetune``, and the
  task-adapted backbone;
- ``classical``: TF-IDF, hiclass, sentence-embedding and SetFit baselines;
- ``results``: the results and predictions files, one run's record, runs grouped for the report;
- ``run``: ``run_benchmark``, resumable, each run saved as it ends;
- ``stats``: paired bootstrap, randomisation test and t-test;
- ``tables`` and ``figures``: the generated Markdown block and the PNG figures;
- ``report``: ``write_report``, which rewrites the docs from the JSON;
- ``__main__``: the command line.
"""

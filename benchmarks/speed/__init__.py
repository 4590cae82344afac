"""The speed benchmark (``python -m benchmarks.speed``), one module per job:

- ``settings``: batch, length and the paths of the checkpoint and ``speed.json``;
- ``data``: real 20 Newsgroups texts and seeded synthetic label trees;
- ``steps``: the interleaved timer and the compared steps (HPT training step, backbone masked-LM step, encoder pass);
- ``costs``: training and inference ratios, throughput, precision options, dynamic padding, the profiler table;
- ``memory``: peak resident memory of import, training and prediction, each in a fresh process;
- ``app_latency``: the launched app's cold start, ``/predict`` latency and the demo fine-tune;
- ``scaling``: step time against length and labels, throughput against batch size;
- ``report``: goals, figures and the generated tables of ``docs/benchmarks.md`` and the README;
- ``__main__``: the command line.
"""

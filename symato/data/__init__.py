"""The data stages: the demo corpus (``demo``), reading sources into raw shards
(``corpus``), cleaning (``clean``), syllable statistics (``stats``), tokenized Arrow
shards and their manifests (``tokenize``), and the training/validation window loader
(``loader``). Each stage module holds its ``symato <stage>`` command.
"""

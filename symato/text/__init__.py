"""The text side of symato: the syllable grammar (``syllable``), the ``Tokenizer``
(``tokenizer``), the tokenizer kinds (``kinds``) and how vocabularies are built
(``vocab``), diacritic-restoration candidates (``restoration``) and the tokenizer's
command-line tools (``cli``: ``symato encode``, ``decode``, ``vocab-info``).

Only numpy is needed here (sentencepiece for its kind): no torch.
"""

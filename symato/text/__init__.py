"""The text side of symato: the syllable grammar (``syllable``), the ``Tokenizer``
(``tokenizer``, a thin facade) over one codec per encoding (``codecs``), decoding
(``decoding``: the reference; ``fastdecode``: the compiled loop), the tokenizer kinds
(``kinds``) and how vocabularies are built (``vocab``, ``bpe``), diacritic-restoration
candidates (``restoration``) and the tokenizer's command-line tools (``cli``: ``symato
encode``, ``decode``, ``vocab-info``).

Only numpy is needed here (sentencepiece for its kinds): no torch.
"""

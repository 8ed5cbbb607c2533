"""The tokenizer class of symato's own kinds for ``transformers`` (``trust_remote_code``).

``tokenization_symato.py`` is the file shipped in an exported folder: a thin subclass of
``symato_tokenizer.SymatoTokenizerBase``, which wraps ``symato.Tokenizer``. All logic
stays here, in the installed package, so the folder carries no second implementation.
"""

VOCAB_FILE = "symato_vocab.json"  # the vocabulary file beside the class in an exported folder

"""symato's tokenizer for ``transformers``: ``AutoTokenizer.from_pretrained(folder,
trust_remote_code=True)``.

This file only names the class; encoding and decoding are the ``symato`` package's own
(``symato.interop.hf_remote.symato_tokenizer``), so ids and text equal symato's
``Tokenizer`` on the vocabulary file beside this one (``symato_vocab.json``).
"""

try:  # inside try: transformers' own requirement check skips it, so this message is shown
    from symato.interop.hf_remote.symato_tokenizer import SymatoTokenizerBase
except ImportError as exc:
    raise ImportError(
        "this tokenizer is symato's (Vietnamese syllable tokenizer) and needs the symato "
        "package with its 'hf' extra: pip install 'symato[hf]' (from the symato source "
        f"tree: pip install '.[hf]'); the import failed with: {exc}") from exc


class SymatoTokenizer(SymatoTokenizerBase):
    """symato's tokenizer (all of it in ``SymatoTokenizerBase``)."""

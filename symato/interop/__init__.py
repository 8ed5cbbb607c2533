"""Models and tokenizers that leave the project or enter it: Hugging Face, lm-evaluation-harness,
the rwkv package."""

"""Paper sources: Hugging Face Daily Papers, arXiv, and local files."""

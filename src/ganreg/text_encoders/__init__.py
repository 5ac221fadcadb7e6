"""Core text encoders: precomputed embeddings and a word-level bi-LSTM."""

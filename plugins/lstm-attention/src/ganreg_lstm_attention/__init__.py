"""Bi-LSTM + multi-head self-attention text encoder for ganreg (entry point ``lstm_attention``)."""

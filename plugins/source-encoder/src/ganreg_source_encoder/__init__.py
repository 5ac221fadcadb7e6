"""Source-image encoder and its KL term for ganreg (entry point ``source_encoder``)."""

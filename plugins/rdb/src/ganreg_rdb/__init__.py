"""Residual-dense-block text-to-image generator for ganreg (entry point ``rdb``)."""

"""Labeling app: the label store (SQLite), rater accounts, the Gradio rating UI, export, agreement.

A leaf package: it knows run directories (images/ + samples.parquet) and nothing of diffusion
or reward models.
"""
